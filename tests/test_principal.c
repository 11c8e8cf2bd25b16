/* test_principal.c - principal.c: identity from the kernel, failing closed,
 * and the roles the config gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon.h"
#include "principal.h"

static void connected_socket_gives_our_credentials(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    principal_t p;
    assert_int_equal(principal_of(sv[0], &p), 0);
    assert_int_equal(p.pid, getpid());
    assert_int_equal(p.uid, getuid());
    assert_int_equal(p.gid, getgid());
    close(sv[0]);
    close(sv[1]);
}

/* No credentials, no identity: never a default uid (0 would be root). */
static void no_credentials_fail_closed(void **state)
{
    (void)state;
    principal_t p;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(principal_of(fds[0], &p), -1);   /* not a socket */
    close(fds[0]);
    close(fds[1]);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s >= 0);
    assert_int_equal(principal_of(s, &p), -1);        /* no peer */
    close(s);
    assert_int_equal(principal_of(-1, &p), -1);
}

static void roles_come_from_the_config_only(void **state)
{
    (void)state;
    static daemon_t d;
    config_defaults(&d.cfg);
    char err[128];
    principal_t other = { .pid = 1, .uid = 4242, .gid = 4242 };
    principal_t me = { .pid = 1, .uid = getuid(), .gid = getgid() };
    /* Allowed as a client is not an admin. */
    assert_int_equal(config_set(&d.cfg, "allow_uids", "4242", 0, err, sizeof err), 0);
    assert_int_equal(principal_is_client(&d, &other), 1);
    assert_int_equal(principal_admin_role(&d, &other), ROLE_NONE);
    assert_int_equal(principal_admin_role(&d, &me), ROLE_ADMIN);
    assert_int_equal(config_set(&d.cfg, "admin_read_uids", "4242", 0, err, sizeof err), 0);
    assert_int_equal(principal_admin_role(&d, &other), ROLE_ADMIN_READ);
    assert_int_equal(config_set(&d.cfg, "admin_uids", "4242", 0, err, sizeof err), 0);
    assert_int_equal(principal_admin_role(&d, &other), ROLE_ADMIN);
    /* A uid outside allow_uids is no client once the list is set. */
    principal_t third = { .pid = 1, .uid = 4343, .gid = 4343 };
    assert_int_equal(principal_is_client(&d, &third), getuid() == 4343);
    assert_string_equal(role_name(ROLE_ADMIN_READ), "admin-read");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connected_socket_gives_our_credentials),
        cmocka_unit_test(no_credentials_fail_closed),
        cmocka_unit_test(roles_come_from_the_config_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#!/usr/bin/env python3
"""check_calls.py - the layering of cached/, checked from the built code.

Reads the daemon's static library (which function each object file defines
and which it calls, through nm) and the sources' #include lines, and fails
when:
  1. the files of cached/ call each other in a circle (a calls b ... calls a);
  2. a file calls a function of another cached/ file without including that
     file's header (a prototype declared by hand, outside the owner's header);
  3. the headers of cached/ include each other in a circle.
On success it prints the files bottom-up, one layer per line: what
docs/architecture.md draws.

usage: check_calls.py LIBSIMCACHED_CORE_A CACHED_SOURCE_DIR
       check_calls.py --self-test   (builds small trees that must fail)
"""
import os
import re
import subprocess
import sys


def nm_members(lib):
    out = subprocess.run(['nm', lib], capture_output=True, text=True, check=True).stdout
    defs, uses, cur = {}, {}, None
    for line in out.splitlines():
        if line.endswith('.o:'):
            cur = os.path.basename(line[:-1]).split('.')[0]
            defs.setdefault(cur, set())
            uses.setdefault(cur, set())
            continue
        parts = line.split()
        if cur is None or not parts:
            continue
        if len(parts) == 3 and parts[1] in 'TDBR':
            defs[cur].add(parts[2])
        elif len(parts) == 2 and parts[0] == 'U':
            uses[cur].add(parts[1])
    return defs, uses


def includes(path):
    with open(path, encoding='utf-8') as f:
        return set(re.findall(r'^#include "([^"]+)\.h"', f.read(), re.M))


def find_cycle(graph):
    """A cycle in {node: set(nodes)} as a list, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def layers(graph):
    level = {}

    def depth(n):
        if n not in level:
            level[n] = 1 + max((depth(m) for m in graph.get(n, ())), default=-1)
        return level[n]

    for n in graph:
        depth(n)
    out = {}
    for n, l in level.items():
        out.setdefault(l, []).append(n)
    return [sorted(out[l]) for l in sorted(out)]


def check(lib, src):
    """The list of errors for this library and source dir ([] if layered)."""
    defs, uses = nm_members(lib)
    owner = {s: f for f, ss in defs.items() for s in ss}
    calls = {f: {} for f in defs}
    for f, us in uses.items():
        for s in us:
            g = owner.get(s)
            if g and g != f:
                calls[f].setdefault(g, set()).add(s)
    errors = []
    cyc = find_cycle({f: set(g) for f, g in calls.items()})
    if cyc:
        errors.append('calls go round in a circle: ' + ' -> '.join(cyc))
        for a, b in zip(cyc, cyc[1:]):
            errors.append('  %s calls %s: %s' % (a, b, ', '.join(sorted(calls[a][b]))))
    headers = {os.path.splitext(h)[0] for h in os.listdir(src) if h.endswith('.h')}
    for f, gs in sorted(calls.items()):
        cpath = os.path.join(src, f + '.c')
        if not os.path.exists(cpath):
            continue
        inc = includes(cpath)
        for g, syms in sorted(gs.items()):
            if g not in inc:
                errors.append('%s.c calls %s (%s) without including %s.h' %
                              (f, g, ', '.join(sorted(syms)), g))
    hgraph = {h: includes(os.path.join(src, h + '.h')) & headers for h in headers}
    hcyc = find_cycle(hgraph)
    if hcyc:
        errors.append('headers include each other in a circle: ' + ' -> '.join(hcyc))
    return errors, calls


def self_test():
    """Three small trees, each with one defect, must each be refused; a
    layered one must pass."""
    import tempfile
    trees = {
        'layered': ({'a.h': '', 'b.h': '',
                     'a.c': '#include "b.h"\nvoid b_f(void);\nvoid a_f(void){b_f();}\n',
                     'b.c': 'void b_f(void){}\n'}, None),
        'circle': ({'a.h': '', 'b.h': '',
                    'a.c': '#include "b.h"\nvoid b_f(void);\nvoid a_f(void){b_f();}\n',
                    'b.c': '#include "a.h"\nvoid a_f(void);\nvoid b_f(void){a_f();}\n'},
                   'circle of calls'),
        'hand-declared': ({'a.h': '', 'b.h': '',
                           'a.c': 'void b_f(void);\nvoid a_f(void){b_f();}\n',
                           'b.c': 'void b_f(void){}\n'}, 'without including'),
        'header circle': ({'a.h': '#include "b.h"\n', 'b.h': '#include "a.h"\n',
                           'a.c': 'void a_f(void){}\n', 'b.c': 'void b_f(void){}\n'},
                          'headers include'),
    }
    bad = 0
    for name, (files, want) in trees.items():
        with tempfile.TemporaryDirectory() as d:
            for fn, text in files.items():
                with open(os.path.join(d, fn), 'w') as f:
                    f.write(text)
            objs = []
            for fn in files:
                if fn.endswith('.c'):
                    o = os.path.join(d, fn + '.o')
                    subprocess.run(['cc', '-c', '-o', o, os.path.join(d, fn)], check=True)
                    objs.append(o)
            lib = os.path.join(d, 'lib.a')
            subprocess.run(['ar', 'rcs', lib] + objs, check=True)
            errors, _ = check(lib, d)
            ok = (not errors) if want is None else any(
                ('circle' in e if want == 'circle of calls' else want in e) for e in errors)
            print('%-14s %s' % (name, 'ok' if ok else 'WRONG: %r' % errors))
            bad += not ok
    return 1 if bad else 0


def main():
    if len(sys.argv) == 2 and sys.argv[1] == '--self-test':
        return self_test()
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    errors, calls = check(sys.argv[1], sys.argv[2])
    if errors:
        print('\n'.join(errors))
        return 1
    print('cached/ calls, bottom-up (each file calls only files on lines above it):')
    for i, layer in enumerate(layers({f: set(g) for f, g in calls.items()})):
        print('  %d: %s' % (i, ' '.join(layer)))
    return 0


if __name__ == '__main__':
    sys.exit(main())

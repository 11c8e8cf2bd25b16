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


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    lib, src = sys.argv[1], sys.argv[2]
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
    if errors:
        print('\n'.join(errors))
        return 1
    print('cached/ calls, bottom-up (each file calls only files on lines above it):')
    for i, layer in enumerate(layers({f: set(g) for f, g in calls.items()})):
        print('  %d: %s' % (i, ' '.join(layer)))
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python3
"""Formats the generation study's eval JSON files (bench/generation-study.sh) as a Markdown table."""
import json, os, sys

folder = sys.argv[1]
runs_folder = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(folder), 'runs')

def prior_figures(name, kind):
    try:
        with open(os.path.join(runs_folder, name, 'priors', kind, 'prior.json')) as h:
            return json.load(h).get('figures', {})
    except OSError:
        return {}
runs = {}
for f in sorted(os.listdir(folder)):
    if not f.endswith('.json'):
        continue
    name, prior = f[:-5].rsplit('-', 1)
    with open(os.path.join(folder, f)) as h:
        runs.setdefault(name, {})[prior] = json.load(h)

def g(report, *keys):
    for k in keys:
        if report is not None and k in report and report[k] is not None:
            return report[k]
    return None

def fmt(v, spec):
    return '–' if v is None else format(v, spec)

for data in ('fm', 'faces'):
    names = [n for n in runs if n.startswith(data + '-')]
    if not names:
        continue
    std0 = runs[names[0]].get('standard', {})
    print(f"\n**{'Fashion-MNIST' if data == 'fm' else 'synthetic faces'}** (N = {g(std0, 'fd_images')}, "
          f"feature net {g(std0, 'fd_net')})\n")
    print('| run | MSE | KL nats (VQ: bits/image) | FD standard | FD gmm | FD autoregressive | FD reconstructions | FD floor |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    for n in names:
        r = runs[n]
        std = r.get('standard', {})
        if '-vq-' in n:
            figures = prior_figures(n, 'autoregressive')
            rate = figures.get('heldout_bits_per_image')
            independent = figures.get('heldout_bits_per_code_independent')
            rate_text = fmt(rate, '.1f') + ('' if independent is None else f" ({independent * figures['positions']:.1f} independent)")
        else:
            rate_text = fmt(g(std, 'kl'), '.2f')
        print(f"| {n[len(data) + 1:]} | {fmt(g(std, 'mse'), '.5f')} | {rate_text} | {fmt(g(std, 'fd'), '.2f')} | "
              f"{fmt(g(r.get('gmm'), 'fd'), '.2f')} | {fmt(g(r.get('autoregressive'), 'fd'), '.2f')} | "
              f"{fmt(g(std, 'fd_reconstructions'), '.2f')} | {fmt(g(std, 'fd_floor'), '.2f')} |")

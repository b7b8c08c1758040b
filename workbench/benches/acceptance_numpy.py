#!/usr/bin/env python3
"""Vectorised numpy peer of the workbench's acceptance-rate benchmark.

The Rust workbench estimates, by Monte Carlo, how often a draft token drawn
from a draft distribution q is accepted for a target distribution p under
three speculative-decoding acceptance rules.  This script implements the same
estimators with numpy, vectorised over batches of trials, so the benchmark can
compare Monte-Carlo trials per second of the Rust code with a strong numpy
baseline on the same machine.

Rules (one trial each; every trial yields an accept flag and an emitted
token, and the emitted tokens are histogrammed with np.bincount):

* naive:    x ~ q, y ~ p independently; accepted iff x == y; emits y.
* standard: speculative sampling (Leviathan et al. 2023, Chen et al. 2023).
            x ~ q; accepted iff u < p[x] / q[x]; emits x if accepted, else a
            sample of the residual r = max(0, p - q) / sum(max(0, p - q)).
* gumbel:   shared Gumbel noise G over the vocabulary;
            x = argmax(log q + G), y = argmax(log p + G); accepted iff
            x == y; emits y.  Implemented as the equivalent
            x = argmin(E / q), y = argmin(E / p) with E ~ Exp(1), which was
            about 2-3x faster here than rng.gumbel + argmax and faster than
            E = -log(U) (both measured with numpy 2.4 on a 2-core AMD EPYC).

The pair: p ~ Dirichlet(alpha = 1) over V tokens and
q = softmax(log p + 0.5 * N(0, 1)), both from fixed seeds.  The exact
acceptance of every rule is printed next to the estimate and the estimate is
checked to lie within 5 standard errors of it; the emitted-token histogram is
checked against p (every rule emits tokens distributed as p) with a pooled
chi-square test.  Checks that fail print a warning on stderr.

Timing: per (rule, V), one untimed warm-up batch, then batches until at least
--seconds of wall time has elapsed.  p, q, the CDFs and other per-pair tables
are built outside the timed region; sampling, accept decisions, the accept
count and the histogram are inside it.

numpy runs every operation used here (bit generator, searchsorted, argmin,
bincount) on a single thread; --threads is only recorded.  To use several
cores, --processes N runs N independent worker processes with independent
seed streams and sums their trials per second.

Output: one JSON object per line, e.g.
{"impl": "numpy", "rule": "standard", "vocab": 1000, "trials": ...,
 "seconds": ..., "trials_per_s": ..., "estimate": ..., "exact": ..., ...}

Usage:
    python3 acceptance_numpy.py [--vocab 10 1000 32000]
        [--rules naive standard gumbel] [--seconds 2.0] [--threads 1]
        [--processes N]
"""

import argparse
import json
import math
import multiprocessing
import sys
import time

import numpy as np

RULES = ("naive", "standard", "gumbel")

# Fixed seeds of the (p, q) pair, so every run and every worker sees the
# same distributions; the trial stream has its own seed (--seed).
P_SEED = 1
Q_NOISE_SEED = 2
Q_NOISE_SCALE = 0.5

# PCG64 produced uniforms about 2.5x faster than Philox on the benchmark
# machine (exponentials ~1.5x), so it is the default; --generator switches.
GENERATORS = {"pcg64": np.random.PCG64, "philox": np.random.Philox}

# Elements (trials x vocabulary entries for gumbel, trials for the others)
# per batch.  2**16 float64 values are 512 KiB, so the working buffers stay
# in the 1 MiB L2 cache; larger batches (up to 2**23) were no faster.
BATCH_ELEMENTS = 2 ** 16

# How many standard errors an estimate may stray from the exact value.
Z_LIMIT = 5.0


# ---------------------------------------------------------------------------
# The distribution pair and its exact acceptance rates.
# ---------------------------------------------------------------------------

def make_pair(vocab):
    """Return (p, q): p ~ Dirichlet(1), q = softmax(log p + 0.5 N(0, 1))."""
    p = np.random.Generator(np.random.PCG64(P_SEED)).dirichlet(np.ones(vocab))
    noise = np.random.Generator(np.random.PCG64(Q_NOISE_SEED)).standard_normal(
        vocab)
    with np.errstate(divide="ignore"):  # log 0 = -inf is fine: exp -> 0.
        logits = np.log(p) + Q_NOISE_SCALE * noise
    q = np.exp(logits - logits.max())  # Shift by the max to avoid overflow.
    return p, q / q.sum()


def exact_acceptance(rule, p, q):
    """Exact probability that a trial of `rule` accepts."""
    if rule == "naive":
        return float(np.sum(p * q))
    if rule == "standard":
        return float(np.sum(np.minimum(p, q)))
    # gumbel: with E_j ~ Exp(1), both argmins pick i iff for every j
    # E_j > E_i * max(p_j / p_i, q_j / q_i); integrating over E_i gives
    # P(x = y = i) = 1 / S_i, S_i = sum_j max(p_j / p_i, q_j / q_i).
    # Sorting by r = p / q splits S_i into a suffix sum of p (tokens with
    # r_j >= r_i, where p_j / p_i is the larger ratio) and a prefix sum of
    # q (the rest), so the whole sum costs O(V log V) instead of O(V^2).
    with np.errstate(divide="ignore"):
        order = np.argsort(p / q, kind="stable")
        ps, qs = p[order], q[order]
        p_suffix = np.cumsum(ps[::-1])[::-1]
        q_prefix = np.concatenate(([0.0], np.cumsum(qs)[:-1]))
        s = p_suffix / ps + q_prefix / qs  # inf where p_i = 0: never chosen.
    return float(np.sum(1.0 / s))


def cdf(weights):
    """CDF of `weights` for np.searchsorted(..., side="right").

    Dividing by the last entry makes it exactly 1.0, so a uniform u in
    [0, 1) always maps to an index < V; side="right" never picks a token
    of probability zero (its CDF step is empty).
    """
    c = np.cumsum(weights)
    return c / c[-1]


# ---------------------------------------------------------------------------
# Samplers: one call runs one batch of trials and returns
# (accepted: bool[B], emitted: intp[B]).  Tables and buffers are built once
# per (rule, V), outside the timed region.
# ---------------------------------------------------------------------------

def make_sampler(rule, p, q, batch_elements):
    """Return (sample, batch, formulation) for `rule` on the pair (p, q)."""
    vocab = p.size
    if rule == "naive":
        batch = batch_elements
        cdf_p, cdf_q = cdf(p), cdf(q)

        def sample(rng):
            u = rng.random(2 * batch)
            x = np.searchsorted(cdf_q, u[:batch], side="right")
            y = np.searchsorted(cdf_p, u[batch:], side="right")
            return x == y, y

        return sample, batch, "searchsorted on CDFs"

    if rule == "standard":
        batch = batch_elements
        cdf_q = cdf(q)
        # min(1, p/q) per token is a per-pair table like the CDFs; u < 1
        # always, so u < p[x]/q[x] and u < min(1, p[x]/q[x]) agree.
        accept_prob = np.minimum(1.0, np.divide(p, q, out=np.zeros_like(p),
                                                where=q > 0))
        residual = np.maximum(p - q, 0.0)
        # p == q leaves no residual mass, but then nothing is ever rejected.
        cdf_residual = cdf(residual) if residual.sum() > 0 else None

        def sample(rng):
            u = rng.random(2 * batch)
            x = np.searchsorted(cdf_q, u[:batch], side="right")
            accepted = u[batch:] < accept_prob[x]
            # Sample the residual only for rejected trials: measured ~1.6x
            # faster than sampling it for all and selecting with np.where.
            rejected = ~accepted
            n_rejected = np.count_nonzero(rejected)
            if n_rejected:
                x[rejected] = np.searchsorted(
                    cdf_residual, rng.random(n_rejected), side="right")
            return accepted, x

        return sample, batch, "searchsorted on CDFs, residual for rejects"

    if rule == "gumbel":
        batch = max(1, batch_elements // vocab)
        # argmax(log w + G) = argmin(E / w) with G = -log E, E ~ Exp(1);
        # multiplying by precomputed 1/w is cheaper than dividing.
        # 1/0 = inf makes zero-probability tokens lose every argmin.
        with np.errstate(divide="ignore"):
            inv_p, inv_q = 1.0 / p, 1.0 / q
        noise = np.empty((batch, vocab))
        scaled = np.empty((batch, vocab))

        def sample(rng):
            rng.standard_exponential(out=noise)
            np.multiply(noise, inv_q, out=scaled)
            x = scaled.argmin(axis=1)
            np.multiply(noise, inv_p, out=scaled)
            y = scaled.argmin(axis=1)
            return x == y, y

        return sample, batch, "argmin(E/p), E=standard_exponential (float64)"

    raise ValueError(f"unknown rule {rule!r}")


# ---------------------------------------------------------------------------
# Timing loop (one process) and the multi-process wrapper.
# ---------------------------------------------------------------------------

def run_trials(rule, p, q, seconds, seed_seq, generator, batch_elements,
               barrier=None):
    """Run batches for at least `seconds`; return counts and timing."""
    rng = np.random.Generator(GENERATORS[generator](seed_seq))
    sample, batch, formulation = make_sampler(rule, p, q, batch_elements)
    sample(rng)  # Untimed warm-up: page in buffers, tables and code paths.
    if barrier is not None:
        barrier.wait()  # Workers start timing together, so they overlap.

    vocab = p.size
    histogram = np.zeros(vocab, dtype=np.int64)
    accepted_total = 0
    trials = 0
    start = time.perf_counter()
    while True:
        accepted, emitted = sample(rng)
        accepted_total += int(np.count_nonzero(accepted))
        histogram += np.bincount(emitted, minlength=vocab)
        trials += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return {"trials": trials, "seconds": elapsed, "accepted": accepted_total,
            "histogram": histogram, "batch": batch,
            "formulation": formulation}


def _worker(queue, barrier, *args):
    queue.put(run_trials(*args, barrier=barrier))


def run_processes(n, rule, p, q, seconds, seed_seq, generator,
                  batch_elements):
    """Run `n` independent workers at once and pool their results."""
    # fork shares p and q with the children without pickling them.
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    barrier = ctx.Barrier(n)
    workers = [
        ctx.Process(target=_worker,
                    args=(queue, barrier, rule, p, q, seconds, child,
                          generator, batch_elements))
        for child in seed_seq.spawn(n)  # Independent streams per worker.
    ]
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]  # Drain before join.
    for w in workers:
        w.join()
    return {
        "trials": sum(r["trials"] for r in results),
        "seconds": max(r["seconds"] for r in results),
        # Each worker's own rate, summed: the throughput of n cores.
        "trials_per_s": sum(r["trials"] / r["seconds"] for r in results),
        "accepted": sum(r["accepted"] for r in results),
        "histogram": sum(r["histogram"] for r in results),
        "batch": results[0]["batch"],
        "formulation": results[0]["formulation"],
    }


# ---------------------------------------------------------------------------
# Correctness checks.
# ---------------------------------------------------------------------------

def acceptance_z(estimate, exact, trials):
    """Standard score of the estimate against the exact value."""
    se = math.sqrt(exact * (1.0 - exact) / trials)
    if se == 0.0:
        return 0.0 if estimate == exact else math.inf
    return (estimate - exact) / se


def histogram_z(histogram, p):
    """Pooled chi-square of emitted tokens against p, as a standard score.

    Tokens expected fewer than 5 times are pooled into one bin so the
    chi-square approximation holds; returns None with fewer than 2 bins.
    """
    expected = histogram.sum() * p
    big = expected >= 5.0
    observed = np.append(histogram[big], histogram[~big].sum())
    expected = np.append(expected[big], expected[~big].sum())
    keep = expected > 0
    observed, expected = observed[keep], expected[keep]
    dof = observed.size - 1
    if dof < 1:
        return None
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    return (chi2 - dof) / math.sqrt(2.0 * dof)


def report(rule, p, result, exact, args, processes):
    """Print one JSON line and warn on stderr if a check fails."""
    vocab = p.size
    trials = result["trials"]
    estimate = result["accepted"] / trials
    z_accept = acceptance_z(estimate, exact, trials)
    z_hist = histogram_z(result["histogram"], p)
    rate = result.get("trials_per_s", trials / result["seconds"])
    print(json.dumps({
        "impl": "numpy",
        "rule": rule,
        "vocab": vocab,
        "trials": trials,
        "seconds": round(result["seconds"], 6),
        "trials_per_s": round(rate, 1),
        "estimate": estimate,
        "exact": exact,
        "numpy": np.__version__,
        "generator": generator_name(args.generator),
        "processes": processes,
        "threads": args.threads,
        "batch": result["batch"],
        "formulation": result["formulation"],
        "z_estimate": round(z_accept, 3),
        "z_histogram": None if z_hist is None else round(z_hist, 3),
    }), flush=True)
    if abs(z_accept) > Z_LIMIT:
        print(f"WARNING: {rule} V={vocab}: estimate {estimate:.6f} is "
              f"{z_accept:.1f} standard errors from exact {exact:.6f}",
              file=sys.stderr, flush=True)
    if z_hist is not None and abs(z_hist) > Z_LIMIT:
        print(f"WARNING: {rule} V={vocab}: emitted-token histogram departs "
              f"from p (chi-square z = {z_hist:.1f})",
              file=sys.stderr, flush=True)


def generator_name(key):
    return f"Generator({GENERATORS[key].__name__})"


# ---------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="numpy peer of the workbench acceptance benchmark")
    parser.add_argument("--vocab", type=int, nargs="+",
                        default=[10, 1000, 32000])
    parser.add_argument("--rules", nargs="+", choices=RULES,
                        default=list(RULES))
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="minimum timed wall time per (rule, vocab)")
    parser.add_argument("--threads", type=int, default=1,
                        help="recorded only: numpy runs these ops on one "
                             "thread; use --processes for more cores")
    parser.add_argument("--processes", type=int, default=0,
                        help="also run N worker processes at once and "
                             "print their summed trials/s on its own line")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the trial stream (not of p and q)")
    parser.add_argument("--generator", choices=sorted(GENERATORS),
                        default="pcg64")
    parser.add_argument("--batch-elements", type=int, default=BATCH_ELEMENTS,
                        help="trials x vocab per gumbel batch; trials per "
                             "batch for naive and standard")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads != 1:
        print("note: numpy runs the bit generator, searchsorted, argmin and "
              "bincount on one thread; --threads is recorded only "
              "(use --processes to use more cores)", file=sys.stderr)
    for rule in args.rules:
        for vocab in args.vocab:
            p, q = make_pair(vocab)
            exact = exact_acceptance(rule, p, q)
            seed_seq = np.random.SeedSequence(args.seed)
            result = run_trials(rule, p, q, args.seconds, seed_seq,
                                args.generator, args.batch_elements)
            report(rule, p, result, exact, args, processes=1)
            if args.processes >= 1:
                pooled = run_processes(args.processes, rule, p, q,
                                       args.seconds, seed_seq,
                                       args.generator, args.batch_elements)
                report(rule, p, pooled, exact, args,
                       processes=args.processes)


if __name__ == "__main__":
    main()

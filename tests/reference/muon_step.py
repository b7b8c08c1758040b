"""Independent reference for two Muon steps (pure Python, float64, no numpy).

Written from the update's definition (Jordan et al. 2024; Moonshot's RMS
matching), not from the Rust code. Prints the weights after two steps for a wide
(3 x 5) and a tall (5 x 3) matrix under both update scalings; the Rust test
`train::muon::tests::two_steps_match_the_python_reference` holds these numbers.

    python3 tests/reference/muon_step.py
"""

A, B, C = 3.4445, -4.7750, 2.0315


def matmul(x, y):
    return [[sum(x[i][k] * y[k][j] for k in range(len(y))) for j in range(len(y[0]))]
            for i in range(len(x))]


def transpose(x):
    return [list(r) for r in zip(*x)]


def add(x, y, a=1.0, b=1.0):
    return [[a * u + b * v for u, v in zip(r, s)] for r, s in zip(x, y)]


def newton_schulz(g, steps=5):
    tall = len(g) > len(g[0])
    x = transpose(g) if tall else [list(r) for r in g]
    norm = sum(v * v for r in x for v in r) ** 0.5
    x = [[v / (norm + 1e-7) for v in r] for r in x]
    for _ in range(steps):
        gram = matmul(x, transpose(x))
        poly = add(gram, matmul(gram, gram), B, C)
        x = add(x, matmul(poly, x), A, 1.0)
    return transpose(x) if tall else x


def muon(w, grads, lr, beta, wd, scale):
    rows, cols = len(w), len(w[0])
    factor = max(1.0, rows / cols) ** 0.5 if scale == "shape" else 0.2 * max(rows, cols) ** 0.5
    m = [[0.0] * cols for _ in range(rows)]
    for g in grads:
        m = add(m, g, beta, 1 - beta)
        u = add(g, m, 1 - beta, beta)  # Nesterov
        o = newton_schulz(u)
        w = add(w, o, 1 - lr * wd, -lr * factor)
    return w


def matrix(rows, cols, seed):
    # A fixed, irregular pattern (no randomness needed).
    return [[((i * 7 + j * 3 + seed) % 11 - 5) / 4 + 0.1 * seed * (i - j) for j in range(cols)]
            for i in range(rows)]


for rows, cols in [(3, 5), (5, 3)]:
    w0 = matrix(rows, cols, 1)
    grads = [matrix(rows, cols, 2), matrix(rows, cols, 3)]
    for scale in ["shape", "adam_rms"]:
        w = muon(w0, grads, lr=0.1, beta=0.95, wd=0.1, scale=scale)
        print(f"{rows}x{cols} {scale}:")
        print(",\n".join("    " + ", ".join(f"{v:.9f}" for v in r) for r in w))

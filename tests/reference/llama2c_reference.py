#!/usr/bin/env python3
"""Independent pure-Python reference for the llama2.c forward pass.

Usage:
    python3 llama2c_reference.py CHECKPOINT TOKENS_JSON

    CHECKPOINT   a llama2.c legacy ("version 0") .bin checkpoint
    TOKENS_JSON  a JSON list of token ids, e.g. "[1, 345, 12, 7]"

The tokens are fed one position at a time (pos = 0, 1, 2, ...) through a
KV-cached forward pass, and stdout gets a single JSON object

    {"logits": [[vocab floats for pos 0], [vocab floats for pos 1], ...]}

with every float written by repr (shortest string that round-trips the
double exactly).

Standard library only (no numpy), so CI needs nothing installed. The module
can also be imported: `load_checkpoint(path)` gives a `Model`, and
`Model.forward(token, pos)` returns the logits at that position.

Semantics
---------
This follows `forward()` in karpathy/llama2.c `run.c` (and the PyTorch model
in `model.py` that `export.py:legacy_export` writes out). It is written from
scratch, not translated line by line. Per position, for token `tok` at `pos`:

    x = token_embedding_table[tok]
    for each layer l:
        xb = rmsnorm(x, rms_att_weight[l])           # eps 1e-5, inside the sqrt
        q = Wq[l] @ xb      (dim)
        k = Wk[l] @ xb      (kv_dim)                 # stored in the KV cache at pos
        v = Wv[l] @ xb      (kv_dim)
        RoPE on q (all of it) and on k: for each even index i, the pair
            (i, i+1) is rotated by angle pos * 10000 ** -((i % head_size) / head_size)
        for each query head h (kv head g = h // (n_heads // n_kv_heads)):
            scores[t] = q_h . k_cache[t]_g / sqrt(head_size), t = 0..pos
            a = softmax(scores)
            out_h = sum_t a[t] * v_cache[t]_g
        x += Wo[l] @ concat(out_h)
        xb = rmsnorm(x, rms_ffn_weight[l])
        x += W2[l] @ (silu(W1[l] @ xb) * (W3[l] @ xb))  # silu(z) = z * sigmoid(z)
    x = rmsnorm(x, rms_final_weight)
    logits = Wcls @ x   (vocab)

rmsnorm(x, w)[j] = w[j] * x[j] / sqrt(mean(x*x) + 1e-5).

Every matrix "W (d, n)" is row-major with d rows of n: the ROWS ARE OUTPUTS,
i.e. out[i] = sum_j W[i*n + j] * x[j]. This is run.c's `matmul(xout, x, w,
n, d)` and PyTorch's nn.Linear weight layout (out_features, in_features),
which legacy_export serializes as is.

Checkpoint layout (legacy / version 0, little-endian)
-----------------------------------------------------
Header: 7 x int32
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
    (vocab_size < 0 means the classifier is NOT shared with the embedding;
    the real vocab size is abs(vocab_size)).
    head_size = dim // n_heads, kv_dim = n_kv_heads * head_size.
Then float32 arrays, in this order (shape as (rows = outputs, cols = inputs)):
    token_embedding_table  [vocab, dim]
    rms_att_weight         [layers, dim]
    wq                     [layers, dim (=n_heads*head_size), dim]
    wk                     [layers, kv_dim, dim]
    wv                     [layers, kv_dim, dim]
    wo                     [layers, dim, dim (=n_heads*head_size)]
    rms_ffn_weight         [layers, dim]
    w1                     [layers, hidden, dim]
    w2                     [layers, dim, hidden]
    w3                     [layers, hidden, dim]
    rms_final_weight       [dim]
    freq_cis_real          seq_len * head_size / 2 floats (skipped; RoPE is recomputed)
    freq_cis_imag          seq_len * head_size / 2 floats (skipped)
    wcls                   [vocab, dim]   only if not shared; else wcls = embedding
(run.c's struct comment writes wq etc. as (layer, dim, n_heads*head_size);
the element count is the same, and the matmul call makes the rows outputs.)

Precision
---------
This computes in Python floats (IEEE double); the float32 weights convert to
doubles exactly. run.c computes in float32 with sequential accumulation, so
a float32 implementation is expected to agree with this reference to about
1e-5 relative (on the scale of the logits), not bit for bit.
"""

import json
import math
import operator
import struct
import sys

ROPE_THETA = 10000.0
RMS_EPS = 1e-5


# ----------------------------------------------------------------------------
# Checkpoint loading


class Config:
    def __init__(self, dim, hidden_dim, n_layers, n_heads, n_kv_heads,
                 vocab_size, seq_len):
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.head_size = dim // n_heads
        self.kv_dim = n_kv_heads * self.head_size
        self.kv_mul = n_heads // n_kv_heads  # query heads per kv head

    def __repr__(self):
        return ("Config(dim=%d, hidden_dim=%d, n_layers=%d, n_heads=%d, "
                "n_kv_heads=%d, vocab_size=%d, seq_len=%d)" % (
                    self.dim, self.hidden_dim, self.n_layers, self.n_heads,
                    self.n_kv_heads, self.vocab_size, self.seq_len))


def _rows(flat, n_rows, n_cols):
    """Split a flat row-major list into n_rows lists of n_cols."""
    assert len(flat) == n_rows * n_cols
    return [flat[r * n_cols:(r + 1) * n_cols] for r in range(n_rows)]


class _Reader:
    """Sequential reader of little-endian float32 arrays from a bytes blob."""

    def __init__(self, data, offset):
        self.data = data
        self.offset = offset

    def floats(self, count):
        end = self.offset + 4 * count
        if end > len(self.data):
            raise ValueError("checkpoint truncated: need %d bytes, have %d"
                             % (end, len(self.data)))
        values = list(struct.unpack_from("<%df" % count, self.data, self.offset))
        self.offset = end
        return values

    def matrices(self, n_layers, n_rows, n_cols):
        """n_layers consecutive row-major (n_rows, n_cols) matrices."""
        return [_rows(self.floats(n_rows * n_cols), n_rows, n_cols)
                for _ in range(n_layers)]

    def skip_floats(self, count):
        self.offset += 4 * count


class Layer:
    """Weights of one transformer block. Matrices are lists of rows (outputs)."""
    pass


class Model:
    def __init__(self, config, embedding, layers, rms_final, wcls):
        self.config = config
        self.embedding = embedding    # [vocab][dim]
        self.layers = layers          # list of Layer
        self.rms_final = rms_final    # [dim]
        self.wcls = wcls              # [vocab][dim]
        self.reset()

    def reset(self):
        """Empty the KV cache (start a new sequence at pos 0)."""
        # key_cache[l][t] / value_cache[l][t]: kv_dim floats for position t.
        self.key_cache = [[] for _ in range(self.config.n_layers)]
        self.value_cache = [[] for _ in range(self.config.n_layers)]

    def forward(self, token, pos):
        """Logits (list of vocab floats) for `token` at position `pos`.

        Positions must be fed in order 0, 1, 2, ... (as run.c's generate loop
        does); the KV cache holds positions 0..pos-1 from earlier calls.
        """
        p = self.config
        if not 0 <= token < p.vocab_size:
            raise ValueError("token %d outside vocab [0, %d)" % (token, p.vocab_size))
        if not 0 <= pos < p.seq_len:
            raise ValueError("pos %d outside [0, seq_len=%d)" % (pos, p.seq_len))
        if any(len(c) != pos for c in self.key_cache):
            raise ValueError("positions must be fed in order from 0 (cache has %d, pos %d)"
                             % (len(self.key_cache[0]), pos))

        hs = p.head_size
        x = list(self.embedding[token])
        cos_sin = rope_table(pos, hs)  # per pair index within a head

        for li, layer in enumerate(self.layers):
            # --- attention block ---
            xb = rmsnorm(x, layer.rms_att)
            q = matvec(layer.wq, xb)
            k = matvec(layer.wk, xb)
            v = matvec(layer.wv, xb)
            q = rope(q, hs, cos_sin)
            k = rope(k, hs, cos_sin)
            self.key_cache[li].append(k)
            self.value_cache[li].append(v)
            keys = self.key_cache[li]
            values = self.value_cache[li]

            scale = 1.0 / math.sqrt(hs)
            att_out = []
            for h in range(p.n_heads):
                qh = q[h * hs:(h + 1) * hs]
                g = h // p.kv_mul  # kv head shared by this query head
                lo, hi = g * hs, (g + 1) * hs
                scores = [dot(qh, kt[lo:hi]) * scale for kt in keys]
                weights = softmax(scores)
                out_h = [0.0] * hs
                for a, vt in zip(weights, values):
                    vh = vt[lo:hi]
                    for i in range(hs):
                        out_h[i] += a * vh[i]
                att_out.extend(out_h)

            x = add(x, matvec(layer.wo, att_out))

            # --- feed-forward block (SwiGLU) ---
            xb = rmsnorm(x, layer.rms_ffn)
            h1 = matvec(layer.w1, xb)
            h3 = matvec(layer.w3, xb)
            hb = [silu(a) * b for a, b in zip(h1, h3)]
            x = add(x, matvec(layer.w2, hb))

        x = rmsnorm(x, self.rms_final)
        return matvec(self.wcls, x)


def load_checkpoint(path):
    """Read a legacy (version 0) llama2.c checkpoint into a Model."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28:
        raise ValueError("file too small for the 7 x int32 header")
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = \
        struct.unpack_from("<7i", data, 0)
    shared_classifier = vocab_size > 0
    vocab_size = abs(vocab_size)
    p = Config(dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len)
    if dim % n_heads or n_heads % n_kv_heads or p.head_size % 2:
        raise ValueError("inconsistent header: %r" % p)

    r = _Reader(data, 28)
    L, D, H, KV = n_layers, dim, hidden_dim, p.kv_dim
    embedding = _rows(r.floats(vocab_size * D), vocab_size, D)
    rms_att = _rows(r.floats(L * D), L, D)
    wq = r.matrices(L, D, D)    # (n_heads*head_size) outputs x dim inputs
    wk = r.matrices(L, KV, D)
    wv = r.matrices(L, KV, D)
    wo = r.matrices(L, D, D)    # dim outputs x (n_heads*head_size) inputs
    rms_ffn = _rows(r.floats(L * D), L, D)
    w1 = r.matrices(L, H, D)
    w2 = r.matrices(L, D, H)
    w3 = r.matrices(L, H, D)
    rms_final = r.floats(D)
    r.skip_floats(seq_len * p.head_size // 2)  # freq_cis_real (unused)
    r.skip_floats(seq_len * p.head_size // 2)  # freq_cis_imag (unused)
    if shared_classifier:
        wcls = embedding
    else:
        wcls = _rows(r.floats(vocab_size * D), vocab_size, D)
    if r.offset != len(data):
        raise ValueError("checkpoint size mismatch: layout ends at byte %d, file has %d"
                         % (r.offset, len(data)))

    layers = []
    for l in range(L):
        layer = Layer()
        layer.rms_att, layer.rms_ffn = rms_att[l], rms_ffn[l]
        layer.wq, layer.wk, layer.wv, layer.wo = wq[l], wk[l], wv[l], wo[l]
        layer.w1, layer.w2, layer.w3 = w1[l], w2[l], w3[l]
        layers.append(layer)
    return Model(p, embedding, layers, rms_final, wcls)


# ----------------------------------------------------------------------------
# Building blocks (all on plain lists of Python floats)


def dot(a, b):
    return sum(map(operator.mul, a, b))


def matvec(w_rows, x):
    """W (d, n) @ x (n,) -> (d,), W given as d rows of n (rows are outputs)."""
    return [sum(map(operator.mul, row, x)) for row in w_rows]


def add(a, b):
    return [u + w for u, w in zip(a, b)]


def rmsnorm(x, weight):
    ms = sum(v * v for v in x) / len(x)
    inv = 1.0 / math.sqrt(ms + RMS_EPS)
    return [w * (inv * v) for w, v in zip(weight, x)]


def softmax(xs):
    m = max(xs)
    es = [math.exp(v - m) for v in xs]
    total = sum(es)
    return [e / total for e in es]


def silu(z):
    return z / (1.0 + math.exp(-z)) if z >= -700.0 else 0.0


def rope_table(pos, head_size):
    """(cos, sin) for each pair (2j, 2j+1) within a head at position pos.

    Angle = pos * 10000 ** -(2j / head_size), as run.c (head_dim = i % head_size
    for even i) and model.py's precompute_freqs_cis.
    """
    table = []
    for i in range(0, head_size, 2):
        freq = 1.0 / (ROPE_THETA ** (i / head_size))
        angle = pos * freq
        table.append((math.cos(angle), math.sin(angle)))
    return table


def rope(vec, head_size, table):
    """Rotate each adjacent pair (i, i+1) of every head of vec by the table."""
    out = list(vec)
    for base in range(0, len(vec), head_size):
        for j, (c, s) in enumerate(table):
            i = base + 2 * j
            v0, v1 = vec[i], vec[i + 1]
            out[i] = v0 * c - v1 * s
            out[i + 1] = v0 * s + v1 * c
    return out


# ----------------------------------------------------------------------------
# Command line


def run_tokens(model, tokens):
    """Logits for each position, feeding tokens at pos 0, 1, ... with a fresh cache."""
    model.reset()
    return [model.forward(tok, pos) for pos, tok in enumerate(tokens)]


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: %s CHECKPOINT TOKENS_JSON\n" % argv[0])
        return 2
    tokens = json.loads(argv[2])
    if not isinstance(tokens, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        sys.stderr.write("TOKENS_JSON must be a JSON list of integers\n")
        return 2
    model = load_checkpoint(argv[1])
    logits = run_tokens(model, tokens)
    # json.dumps writes floats with float.__repr__ (round-trip exact).
    sys.stdout.write(json.dumps({"logits": logits}))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

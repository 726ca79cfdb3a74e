// The element-wise and row-wise kernels of GPT-2 training: embedding,
// LayerNorm, GELU, bias/residual seeding, casts, softmax + cross-entropy,
// reductions, the grad norm and fused AdamW. Each mirrors a CPU function
// in src/model/ops or src/train and is tested against it
// (tests/cuda_kernels.rs). Every reduction runs in a fixed order (no float
// atomics), so a step is bit-identical run to run: training resume needs it.
//
// Launch configurations are written above each kernel; src/backend/cuda/
// kernels.rs copies them.

// ---------------------------------------------------------------- embedding

// out[bt, c] = wte[inp[bt], c] + wpe[bt % T, c].
// launch: grid (ceil(BT*C/256)), block (256)
extern "C" __global__ void encoder_fwd(float* out, const int* inp, const float* wte, const float* wpe,
                                       int BT, int T, int C) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)BT * C) return;
    int bt = (int)(i / C), c = (int)(i % C);
    out[i] = wte[(long)inp[bt] * C + c] + wpe[(long)(bt % T) * C + c];
}

// dwpe[t, c] += sum over b of dout[b, t, c], b in order.
// launch: grid (ceil(T*C/256)), block (256)
extern "C" __global__ void encoder_bwd_wpe(float* dwpe, const float* dout, int B, int T, int C) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)T * C) return;
    float s = 0.0f;
    for (int b = 0; b < B; b++) s += dout[(long)b * T * C + i];
    dwpe[i] += s;
}

// dwte[tok, c] += sum of dout[pos, c] over the positions holding tok. The host
// sorts positions by token: `order` lists positions grouped by token, group g
// is order[starts[g] .. starts[g+1]) with token tokens[g]. Deterministic: one
// block per token sums its positions in their listed order.
// launch: grid (G), block (min(C, 256) rounded up to 32)
extern "C" __global__ void encoder_bwd_wte(float* dwte, const float* dout, const int* order, const int* starts,
                                           const int* tokens, int C) {
    int g = blockIdx.x;
    int s0 = starts[g], s1 = starts[g + 1];
    float* row = dwte + (long)tokens[g] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float s = 0.0f;
        for (int k = s0; k < s1; k++) s += dout[(long)order[k] * C + c];
        row[c] += s;
    }
}

// ---------------------------------------------------------------- layernorm

// One warp per row; eps 1e-5 as in src/model/ops/layernorm.rs. Variance is
// the mean of squared deviations (two passes over the row in registers/L1).
// launch: grid (ceil(N/8)), block (256)
extern "C" __global__ void layernorm_fwd(float* out, float* mean, float* rstd, const float* inp, const float* w,
                                         const float* b, int N, int C) {
    int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return;
    const float* x = inp + (long)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    v = warp_sum(v) / C;
    float r = 1.0f / sqrtf(v + 1e-5f);
    float* o = out + (long)row * C;
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

// dinp += LayerNorm backward; the weight and bias gradients of each warp's
// ROWS rows go to part[warp, 0..C) (dw) and part[warp, C..2C) (db), which
// reduce_cols_add then sums over warps in order.
// launch: grid (ceil(ceil(N/LN_ROWS)/8)), block (256); part has ceil(N/LN_ROWS) rows of 2C
#define LN_ROWS 32
extern "C" __global__ void layernorm_bwd(float* dinp, float* part, const float* dout, const float* inp,
                                         const float* w, const float* mean, const float* rstd, int N, int C) {
    int warp = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    int r0 = warp * LN_ROWS;
    if (r0 >= N) return;
    int r1 = min(r0 + LN_ROWS, N);
    float* dw = part + (long)warp * 2 * C;
    float* db = dw + C;
    for (int c = lane; c < C; c += 32) {
        dw[c] = 0.0f;
        db[c] = 0.0f;
    }
    for (int r = r0; r < r1; r++) {
        const float* x = inp + (long)r * C;
        const float* dy = dout + (long)r * C;
        float m = mean[r], rs = rstd[r];
        float a = 0.0f, bsum = 0.0f;
        for (int c = lane; c < C; c += 32) {
            float xh = (x[c] - m) * rs;
            float dn = dy[c] * w[c];
            a += dn;
            bsum += dn * xh;
        }
        a = warp_sum(a) / C;
        bsum = warp_sum(bsum) / C;
        float* dx = dinp + (long)r * C;
        for (int c = lane; c < C; c += 32) {
            float xh = (x[c] - m) * rs;
            float dn = dy[c] * w[c];
            dx[c] += (dn - a - xh * bsum) * rs;
            dw[c] += dy[c] * xh;
            db[c] += dy[c];
        }
    }
}

// dst[c] += sum over r in order of part[r * ld + c], for c < cols.
// launch: grid (ceil(cols/256)), block (256)
extern "C" __global__ void reduce_cols_add(float* dst, const float* part, int rows, int cols, int ld) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; r++) s += part[(long)r * ld + c];
    dst[c] += s;
}

// part[p, c] = sum of x[r, c] (row stride ld) over rows r of chunk p
// (COL_ROWS rows each): the first pass of a bias gradient.
// launch: grid (ceil(cols/256), ceil(N/COL_ROWS)), block (256)
#define COL_ROWS 64
extern "C" __global__ void col_partial(float* part, const float* x, int N, int cols, int ld) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    if (c >= cols) return;
    int r0 = p * COL_ROWS, r1 = min(r0 + COL_ROWS, N);
    float s = 0.0f;
    for (int r = r0; r < r1; r++) s += x[(long)r * ld + c];
    part[(long)p * cols + c] = s;
}

// ---------------------------------------------------------------- GELU

#define SQRT_2_OVER_PI 0.7978845608028654f

// GPT-2's tanh GELU (src/model/ops/gelu.rs).
// launch: grid (ceil(n/256)), block (256)
extern "C" __global__ void gelu_fwd(float* out, const float* inp, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
}

// d *= GELU'(inp), in place.
// launch: grid (ceil(n/256)), block (256)
extern "C" __global__ void gelu_bwd(float* d, const float* inp, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = inp[i];
    float th = tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x));
    float sech2 = 1.0f - th * th;
    float local = 0.5f * (1.0f + th) + 0.5f * x * sech2 * SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
    d[i] *= local;
}

// ---------------------------------------------------------------- linear helpers

// out[r, c] = (res ? res[r, c] : 0) + (bias ? bias[c] : 0) for c < OC, row
// stride ldo (res has stride OC): the seed a matmul then adds into (beta 1).
// launch: grid (ceil(N*OC/256)), block (256)
extern "C" __global__ void seed_bias_residual(float* out, int ldo, const float* bias, const float* res, int N,
                                              int OC) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)N * OC) return;
    int r = (int)(i / OC), c = (int)(i % OC);
    float v = 0.0f;
    if (res) v = res[i];
    if (bias) v += bias[c];
    out[(long)r * ldo + c] = v;
}

// out[r, c] = bf16(inp[r, c]) for c < cols, both with row stride ld.
// launch: grid (ceil(rows*cols/256)), block (256)
extern "C" __global__ void cast_bf16(bf16* out, const float* inp, long rows, int cols, int ld) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    long r = i / cols, c = i % cols;
    out[r * ld + c] = f32_to_bf16(inp[r * ld + c]);
}

// out = a + b, element-wise.
// launch: grid (ceil(n/256)), block (256)
extern "C" __global__ void residual_add(float* out, const float* a, const float* b, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

// ---------------------------------------------------------------- softmax + cross-entropy

// Per row of logits [N, Vp] (only the first V columns are real): lse and
// loss = lse - logit[target]; 0 for both where mask[row] == 0 (mask may be null).
// launch: grid (N), block (1024)
extern "C" __global__ void ce_fwd(float* losses, float* lse, const float* logits, const int* targets,
                                  const unsigned char* mask, int N, int V, int Vp) {
    __shared__ float sh[32];
    int row = blockIdx.x;
    if (mask && mask[row] == 0) {
        if (threadIdx.x == 0) {
            losses[row] = 0.0f;
            lse[row] = 0.0f;
        }
        return;
    }
    const float* x = logits + (long)row * Vp;
    float mx = NEG_INF;
    for (int c = threadIdx.x; c < V; c += blockDim.x) mx = fmaxf(mx, x[c]);
    mx = block_max(mx, sh);
    float s = 0.0f;
    for (int c = threadIdx.x; c < V; c += blockDim.x) s += expf(x[c] - mx);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
        float l = mx + logf(s);
        lse[row] = l;
        losses[row] = l - x[targets[row]];
    }
}

// d(loss)/d(logits) = g * (softmax - onehot(target)) on counted rows, 0 on
// masked rows and padded columns. Writes bf16 into d16 (row stride Vp) when
// it is not null, and f32 into d32 when that is not null (d32 may be
// `logits` itself: each element is read before it is written, by one thread).
// launch: grid (N), block (1024)
extern "C" __global__ void ce_bwd(bf16* d16, float* d32, const float* logits, const float* lse, const int* targets,
                                  const unsigned char* mask, float g, int N, int V, int Vp) {
    int row = blockIdx.x;
    bool off = g == 0.0f || (mask && mask[row] == 0);
    const float* x = logits + (long)row * Vp;
    float l = lse[row];
    int t = targets[row];
    for (int c = threadIdx.x; c < Vp; c += blockDim.x) {
        float d = 0.0f;
        if (!off && c < V) d = g * (expf(x[c] - l) - (c == t ? 1.0f : 0.0f));
        if (d16) d16[(long)row * Vp + c] = f32_to_bf16(d);
        if (d32) d32[(long)row * Vp + c] = d;
    }
}

// ---------------------------------------------------------------- reductions

// part[block] = sum of squares of x[i] over this block's grid-stride share,
// then the block tree. The grid size is fixed by the caller, so the order is.
// launch: grid (NORM_BLOCKS = 512), block (512)
extern "C" __global__ void sumsq_partial(float* part, const float* x, long n) {
    __shared__ float sh[32];
    float s = 0.0f;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        s += v * v;
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// out[0] = sqrt(sum of part[0..n)) if root, else the plain sum (the mean loss
// passes root 0 and scale 1/count).
// launch: grid (1), block (1024)
extern "C" __global__ void sum_final(float* out, const float* part, int n, int root, float scale) {
    __shared__ float sh[32];
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) out[0] = root ? sqrtf(s) : s * scale;
}

// ---------------------------------------------------------------- AdamW

// One AdamW step on a run of n parameters (src/train/adamw.rs, PyTorch's
// rule): g *= grad_scale; m, v moments; p = p*decay - step_size*m/(sqrt(v)*inv_sqrt_bc2 + eps).
// Writes the bf16 copy of the new parameter into p16 when it is not null.
// launch: grid (ceil(n/256)), block (256)
extern "C" __global__ void adamw(float* p, bf16* p16, const float* grads, float* m, float* v, long n, float beta1,
                                 float beta2, float eps, float decay, float step_size, float inv_sqrt_bc2,
                                 float grad_scale) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grads[i] * grad_scale;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float pi = p[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    p[i] = pi;
    if (p16) p16[i] = f32_to_bf16(pi);
}

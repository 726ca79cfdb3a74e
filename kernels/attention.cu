// GPT-2 causal self-attention, fp32 reference-quality paths (common.cuh is
// prepended by kiln: no headers here).
//
// Layouts:
//   qkv  [B, T, 3C]  row (b,t) = [q(C) | k(C) | v(C)], head h at columns h*HS..(h+1)*HS
//   out  [B, T, C]   head h at columns h*HS..(h+1)*HS
//   lse  [B, NH, T]  natural log-sum-exp of the scaled causal scores of each row
//   dqkv [B, T, 3C]  same layout as qkv, fully overwritten by the backward
// scale = 1/sqrt(HS); s[i][j] = scale * q_i.k_j for j <= i.
// HS: any value in 1..128 (GPT-2: 64; fast paths for 16, 32, 64, 128, a
// guarded generic path for the rest). Everything is fp32 with accurate
// expf/logf; no fast-math intrinsics.
//
// Flash kernels (forward, backward dk/dv, backward dq) share one block shape:
// 256 threads seen as a 16 x 16 grid, tx = tid % 16, ty = tid / 16. A block
// works on a 64 x 64 tile M[r][c] of scores: thread (ty, tx) owns the 4 x 4
// elements with rows r = 4*ty + a and columns c = tx + 16*b (a, b in 0..3),
// so the 16 threads that share a row are one half-warp (row reductions are
// shuffles with xor 8, 4, 2, 1). Accumulators of shape 64 x HS (out, dq, dk,
// dv) are owned as rows r = 4*ty + a, columns d = tx + 16*k (k < HS/16).
//
// Shared memory (static, same for every HS <= 128, no dynamic shared memory):
//   xs  [64][FA_LDT]  a 64x64 tile stored transposed: xs[c*FA_LDT + r]
//   ub  FA_UB floats   union buffer, reused by two phases:
//     phase A (scores):  transposed d-chunks, chunk[dd*FA_LDT + row], 64 rows
//                        x FA_DC_* head dims each (2 chunks fwd, 4 chunks bwd)
//     phase B (P @ V-like products): JC rows x HS of a row-major operand,
//                        JC = 64 for HS <= 64, 32 for HS <= 128.
// FA_LDT = 68 keeps float4 alignment and makes the float4 stores and the
// broadcast / consecutive loads bank-conflict free.
// No T x T matrix is ever written to device memory; nothing uses atomics, so
// every kernel is deterministic run to run.

#define FA_TILE 64       // Q rows per tile == K/V rows per tile
#define FA_THREADS 256   // 16 x 16 threads
#define FA_LDT 68        // leading dimension of transposed tiles
#define FA_DC_FWD 32     // head dims per score chunk, forward (2 operands)
#define FA_DC_BWD 16     // head dims per score chunk, backward (4 operands)
#define FA_UB (FA_TILE * FA_LDT) // 4352 floats = 2*32*68 = 4*16*68 >= JC*HS

// Contract violations (wrong block size, HS > 128) would silently corrupt
// shared memory or leave outputs unwritten: stop the kernel loudly instead
// (PTX trap: the launch fails with a sticky launch error).
__device__ __forceinline__ void fa_require(bool ok) {
    if (!ok) asm volatile("trap;");
}

// Number of 16-wide column groups a thread owns in a 64 x HS accumulator.
template <int HSC> struct FaCfg {
    static constexpr int NK = HSC > 0 ? (HSC + 15) / 16 : 8;
    static constexpr bool EXACT = HSC > 0 && (HSC % 16) == 0;
};

__device__ __forceinline__ float fa_hw_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 8));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 4));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return v;
}

__device__ __forceinline__ float fa_hw_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 8);
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v;
}

// dst[dd*FA_LDT + r] = src[(row0 + r)*stride + d0 + dd] for r < 64, dd < DC;
// 0 where row0 + r >= T or d0 + dd >= HS. Each work item loads one head dim
// of 4 consecutive rows (coalesced along dd) and stores one float4.
template <int DC>
__device__ __forceinline__ void fa_load_t(float* dst, const float* __restrict__ src, int row0,
                                          int T, long long stride, int d0, int HS) {
    for (int it = threadIdx.x; it < 16 * DC; it += FA_THREADS) {
        const int dd = it % DC, rq = it / DC;
        const int d = d0 + dd;
        float v[4];
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int r = row0 + 4 * rq + c;
            v[c] = (r < T && d < HS) ? src[(long long)r * stride + d] : 0.0f;
        }
        *reinterpret_cast<float4*>(&dst[dd * FA_LDT + 4 * rq]) = make_float4(v[0], v[1], v[2], v[3]);
    }
}

// acc[a][b] += sum_dd rows[dd][4ty+a] * cols[dd][tx+16b] over one chunk.
template <int DC>
__device__ __forceinline__ void fa_mma_t(float acc[4][4], const float* rows, const float* cols) {
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll 8
    for (int dd = 0; dd < DC; dd++) {
        const float4 r = *reinterpret_cast<const float4*>(&rows[dd * FA_LDT + 4 * ty]);
        float c[4];
#pragma unroll
        for (int b = 0; b < 4; b++) c[b] = cols[dd * FA_LDT + tx + 16 * b];
#pragma unroll
        for (int b = 0; b < 4; b++) {
            acc[0][b] += r.x * c[b];
            acc[1][b] += r.y * c[b];
            acc[2][b] += r.z * c[b];
            acc[3][b] += r.w * c[b];
        }
    }
}

// Store the thread's 4x4 register tile transposed: xs[(tx+16b)*FA_LDT + 4ty + a] = m[a][b].
__device__ __forceinline__ void fa_store_xs(float* xs, const float m[4][4]) {
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
    for (int b = 0; b < 4; b++)
        *reinterpret_cast<float4*>(&xs[(tx + 16 * b) * FA_LDT + 4 * ty]) =
            make_float4(m[0][b], m[1][b], m[2][b], m[3][b]);
}

// Phase B: acc[a][k] += sum_{c < 64} xs[c][4ty+a] * src[c0 + c][tx + 16k]
// (src row-major with `stride`, rows >= T read as 0, chunks that start at or
// past T are skipped). Starts with __syncthreads(), so the caller's xs writes
// are visible and earlier readers of ub are done. c0 < T always.
template <int HSC>
__device__ __forceinline__ void fa_pass_b(float acc[4][FaCfg<HSC>::NK], const float* xs, float* ub,
                                          const float* __restrict__ src, int c0, int T,
                                          long long stride, int HS_rt) {
    constexpr int NK = FaCfg<HSC>::NK;
    constexpr bool EXACT = FaCfg<HSC>::EXACT;
    const int HS = HSC > 0 ? HSC : HS_rt;
    const int JC = HS <= 64 ? 64 : 32;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    for (int j0 = 0; j0 < FA_TILE; j0 += JC) {
        if (c0 + j0 >= T) break; // block-uniform
        __syncthreads();
        const int n = JC * HS;
        for (int e = threadIdx.x; e < n; e += FA_THREADS) {
            const int jj = e / HS, d = e - jj * HS;
            const int r = c0 + j0 + jj;
            ub[e] = r < T ? src[(long long)r * stride + d] : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int jj = 0; jj < JC; jj++) {
            const float4 x = *reinterpret_cast<const float4*>(&xs[(j0 + jj) * FA_LDT + 4 * ty]);
#pragma unroll
            for (int k = 0; k < NK; k++) {
                const int d = tx + 16 * k;
                if (EXACT || d < HS) {
                    const float v = ub[jj * HS + d];
                    acc[0][k] += x.x * v;
                    acc[1][k] += x.y * v;
                    acc[2][k] += x.z * v;
                    acc[3][k] += x.w * v;
                }
            }
        }
    }
}

// Per-row statistics of the 64 rows q0..q0+63 for the backward:
// s_lse[r] = lse of row q0+r, s_d[r] = D = sum_d dout*out (0 for rows >= T).
// Warp w handles rows 8w..8w+7. No barrier inside; callers order it.
__device__ __forceinline__ void fa_row_stats(float* s_lse, float* s_d, const float* __restrict__ dout,
                                             const float* __restrict__ out, const float* __restrict__ lse,
                                             int b, int h, int q0, int T, int NH, int HS) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long C = (long long)NH * HS;
    for (int rr = 0; rr < 8; rr++) {
        const int r = warp * 8 + rr, i = q0 + r;
        float acc = 0.0f;
        if (i < T) { // warp-uniform
            const long long base = ((long long)b * T + i) * C + (long long)h * HS;
            for (int d = lane; d < HS; d += 32) acc += dout[base + d] * out[base + d];
        }
        acc = warp_sum(acc);
        if (lane == 0) {
            s_d[r] = acc;
            s_lse[r] = i < T ? lse[((long long)b * NH + h) * T + i] : 0.0f;
        }
    }
}

// ----------------------------------------------------------------------------
// Forward
// ----------------------------------------------------------------------------

// Block: Q tile qt (rows q0..q0+63) of head (b, h). Loops over K/V tiles
// kt = 0..qt (tiles above the diagonal are skipped); per K/V tile:
//   phase A: S = Q K^T over head-dim chunks of 32 (Q, K chunks in ub),
//   online softmax on the register tile (running max m, running sum l per row),
//   P^T -> xs, phase B: O += P V (V rows in ub, JC at a time).
// Q tiles are issued last-first (most work first).
template <int HSC>
__device__ __forceinline__ void fa_fwd_impl(float* __restrict__ out, float* __restrict__ lse,
                                            const float* __restrict__ qkv, int B, int T, int NH, int HS_rt,
                                            float* xs, float* ub) {
    constexpr int NK = FaCfg<HSC>::NK;
    constexpr bool EXACT = FaCfg<HSC>::EXACT;
    const int HS = HSC > 0 ? HSC : HS_rt;

    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int nqt = (T + FA_TILE - 1) / FA_TILE;
    const int qt = nqt - 1 - (int)blockIdx.x;
    const int b = (int)blockIdx.y / NH, h = (int)blockIdx.y % NH;
    const long long C = (long long)NH * HS, stride = 3 * C;
    const float* qb = qkv + (long long)b * T * stride + (long long)h * HS;
    const float* kb = qb + C;
    const float* vb = qb + 2 * C;
    if (qt < 0) return; // grid larger than documented: nothing to do
    const int q0 = qt * FA_TILE;
    const float scale = 1.0f / sqrtf((float)HS);

    float o[4][NK];
    float m[4], l[4];
#pragma unroll
    for (int a = 0; a < 4; a++) {
        m[a] = NEG_INF;
        l[a] = 0.0f;
#pragma unroll
        for (int k = 0; k < NK; k++) o[a][k] = 0.0f;
    }

    for (int kt = 0; kt <= qt; kt++) {
        const int k0 = kt * FA_TILE;
        float s[4][4];
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int c = 0; c < 4; c++) s[a][c] = 0.0f;

        for (int d0 = 0; d0 < HS; d0 += FA_DC_FWD) {
            __syncthreads(); // previous readers of ub are done
            fa_load_t<FA_DC_FWD>(ub, qb, q0, T, stride, d0, HS);
            fa_load_t<FA_DC_FWD>(ub + FA_DC_FWD * FA_LDT, kb, k0, T, stride, d0, HS);
            __syncthreads();
            fa_mma_t<FA_DC_FWD>(s, ub, ub + FA_DC_FWD * FA_LDT);
        }

        // Causal mask j > i. Every row (also rows >= T, which are never
        // written) has j = 0 unmasked in tile 0, so m is finite from then on.
#pragma unroll
        for (int a = 0; a < 4; a++) {
            const int i = q0 + 4 * ty + a;
            float mt = NEG_INF;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int j = k0 + tx + 16 * c;
                s[a][c] = j <= i ? s[a][c] * scale : NEG_INF;
                mt = fmaxf(mt, s[a][c]);
            }
            mt = fa_hw_max(mt);
            const float mnew = fmaxf(m[a], mt);
            const float base = mnew == NEG_INF ? 0.0f : mnew;
            const float alpha = expf(m[a] - base); // m = -inf -> 0
            float rs = 0.0f;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                s[a][c] = expf(s[a][c] - base);
                rs += s[a][c];
            }
            rs = fa_hw_sum(rs);
            l[a] = l[a] * alpha + rs;
            m[a] = mnew;
#pragma unroll
            for (int k = 0; k < NK; k++) o[a][k] *= alpha;
        }

        fa_store_xs(xs, s); // xs[j][i] = P[i][j]; last read of xs was before the syncs above
        fa_pass_b<HSC>(o, xs, ub, vb, k0, T, stride, HS);
    }

#pragma unroll
    for (int a = 0; a < 4; a++) {
        const int i = q0 + 4 * ty + a;
        if (i < T) {
            const float inv = 1.0f / l[a];
            float* orow = out + ((long long)b * T + i) * C + (long long)h * HS;
#pragma unroll
            for (int k = 0; k < NK; k++) {
                const int d = tx + 16 * k;
                if (EXACT || d < HS) orow[d] = o[a][k] * inv;
            }
            if (tx == 0) lse[((long long)b * NH + h) * T + i] = m[a] + logf(l[a]);
        }
    }
}

// (34816 bytes of static shared memory; no dynamic shared memory)
// launch: grid ((T + 63) / 64, B * NH, 1), block (256), shared 0 bytes
extern "C" __global__ void __launch_bounds__(FA_THREADS, 2)
flash_attn_fwd(float* out, float* lse, const float* qkv, int B, int T, int NH, int HS) {
    // Declared here, not in the templates: one allocation for all HS paths.
    __shared__ __align__(16) float xs[FA_TILE * FA_LDT];
    __shared__ __align__(16) float ub[FA_UB];
    fa_require(blockDim.x == FA_THREADS && HS >= 1 && HS <= 128);
    if ((int)blockIdx.y >= B * NH) return; // grid larger than documented
    switch (HS) {
    case 64: fa_fwd_impl<64>(out, lse, qkv, B, T, NH, HS, xs, ub); break;
    case 128: fa_fwd_impl<128>(out, lse, qkv, B, T, NH, HS, xs, ub); break;
    case 32: fa_fwd_impl<32>(out, lse, qkv, B, T, NH, HS, xs, ub); break;
    case 16: fa_fwd_impl<16>(out, lse, qkv, B, T, NH, HS, xs, ub); break;
    default: fa_fwd_impl<0>(out, lse, qkv, B, T, NH, HS, xs, ub); break;
    }
}

// ----------------------------------------------------------------------------
// Backward: two kernels, no atomics, no scratch buffer.
//   1. flash_attn_bwd    writes dk and dv (the k and v column ranges of dqkv):
//      one block per K/V tile, looping over the Q tiles at or below it.
//   2. flash_attn_bwd_dq writes dq (the q column range of dqkv):
//      one block per Q tile, looping over the K/V tiles at or left of it.
// Together they overwrite every element of dqkv (rows t < T, all heads, all
// head dims, in each of the q, k, v ranges). The caller launches
// flash_attn_bwd then flash_attn_bwd_dq (any order works: they write
// disjoint parts of dqkv and read only the inputs).
// Both recompute P = exp(s - lse) and D_i = sum_d dout_i*out_i on the fly.
// ----------------------------------------------------------------------------

// Block: K/V tile kt (rows k0..k0+63) of head (b, h); loops qt = kt..nqt-1.
// Register tiles are transposed (rows = key j = 4ty+a, columns = query
// i = tx+16b): S^T = K Q^T and dP^T = V dO^T (phase A, head-dim chunks of 16),
// P^T = exp(scale*S^T - lse_i), dS^T = P^T * (dP^T - D_i);
// P -> xs, dV += P^T dO (phase B); dS -> xs, dK += dS^T Q (phase B);
// dk is scaled by `scale` at the end.
template <int HSC>
__device__ __forceinline__ void fa_bwd_dkdv_impl(float* __restrict__ dqkv, const float* __restrict__ dout,
                                                 const float* __restrict__ qkv, const float* __restrict__ out,
                                                 const float* __restrict__ lse, int B, int T, int NH, int HS_rt,
                                                 float* xs, float* ub, float* s_lse, float* s_d) {
    constexpr int NK = FaCfg<HSC>::NK;
    constexpr bool EXACT = FaCfg<HSC>::EXACT;
    const int HS = HSC > 0 ? HSC : HS_rt;

    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int nqt = (T + FA_TILE - 1) / FA_TILE;
    const int kt = (int)blockIdx.x; // kt = 0 has the most work: issued first
    const int b = (int)blockIdx.y / NH, h = (int)blockIdx.y % NH;
    const long long C = (long long)NH * HS, stride = 3 * C;
    const float* qb = qkv + (long long)b * T * stride + (long long)h * HS;
    const float* kb = qb + C;
    const float* vb = qb + 2 * C;
    const float* dob = dout + (long long)b * T * C + (long long)h * HS;
    const int k0 = kt * FA_TILE;
    const float scale = 1.0f / sqrtf((float)HS);
    float* const u0 = ub;                          // K chunk  (rows j)
    float* const u1 = ub + 1 * FA_DC_BWD * FA_LDT; // Q chunk  (cols i)
    float* const u2 = ub + 2 * FA_DC_BWD * FA_LDT; // V chunk  (rows j)
    float* const u3 = ub + 3 * FA_DC_BWD * FA_LDT; // dO chunk (cols i)

    float dk[4][NK], dv[4][NK];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int k = 0; k < NK; k++) {
            dk[a][k] = 0.0f;
            dv[a][k] = 0.0f;
        }

    for (int qt = kt; qt < nqt; qt++) {
        const int q0 = qt * FA_TILE;
        // The previous iteration's reads of s_lse/s_d precede its phase-B
        // barriers; the writes here are published by the first phase-A barrier.
        fa_row_stats(s_lse, s_d, dout, out, lse, b, h, q0, T, NH, HS);

        float st[4][4], dpt[4][4];
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                st[a][c] = 0.0f;
                dpt[a][c] = 0.0f;
            }
        for (int d0 = 0; d0 < HS; d0 += FA_DC_BWD) {
            __syncthreads();
            fa_load_t<FA_DC_BWD>(u0, kb, k0, T, stride, d0, HS);
            fa_load_t<FA_DC_BWD>(u1, qb, q0, T, stride, d0, HS);
            fa_load_t<FA_DC_BWD>(u2, vb, k0, T, stride, d0, HS);
            fa_load_t<FA_DC_BWD>(u3, dob, q0, T, C, d0, HS);
            __syncthreads();
            fa_mma_t<FA_DC_BWD>(st, u0, u1);
            fa_mma_t<FA_DC_BWD>(dpt, u2, u3);
        }

#pragma unroll
        for (int a = 0; a < 4; a++) {
            const int j = k0 + 4 * ty + a;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int ic = tx + 16 * c, i = q0 + ic;
                const bool valid = j <= i && i < T;
                const float p = valid ? expf(st[a][c] * scale - s_lse[ic]) : 0.0f;
                dpt[a][c] = p * (dpt[a][c] - s_d[ic]); // dS^T
                st[a][c] = p;                          // P^T
            }
        }

        fa_store_xs(xs, st); // xs[i][j] = P[i][j]
        fa_pass_b<HSC>(dv, xs, ub, dob, q0, T, C, HS);
        __syncthreads(); // all reads of xs (P) and ub done
        fa_store_xs(xs, dpt); // xs[i][j] = dS[i][j]
        fa_pass_b<HSC>(dk, xs, ub, qb, q0, T, stride, HS);
    }

#pragma unroll
    for (int a = 0; a < 4; a++) {
        const int j = k0 + 4 * ty + a;
        if (j < T) {
            float* row = dqkv + ((long long)b * T + j) * stride + (long long)h * HS;
#pragma unroll
            for (int k = 0; k < NK; k++) {
                const int d = tx + 16 * k;
                if (EXACT || d < HS) {
                    row[C + d] = dk[a][k] * scale;
                    row[2 * C + d] = dv[a][k];
                }
            }
        }
    }
}

// Block: Q tile qt (rows q0..q0+63) of head (b, h); loops kt = 0..qt.
// Register tiles: rows = query i = 4ty+a, columns = key j = tx+16b.
// S = Q K^T and dP = dO V^T (phase A, chunks of 16), P = exp(scale*S - lse_i),
// dS = P * (dP - D_i); dS^T -> xs; dQ += dS K (phase B); scaled at the end.
template <int HSC>
__device__ __forceinline__ void fa_bwd_dq_impl(float* __restrict__ dqkv, const float* __restrict__ dout,
                                               const float* __restrict__ qkv, const float* __restrict__ out,
                                               const float* __restrict__ lse, int B, int T, int NH, int HS_rt,
                                                 float* xs, float* ub, float* s_lse, float* s_d) {
    constexpr int NK = FaCfg<HSC>::NK;
    constexpr bool EXACT = FaCfg<HSC>::EXACT;
    const int HS = HSC > 0 ? HSC : HS_rt;

    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int nqt = (T + FA_TILE - 1) / FA_TILE;
    const int qt = nqt - 1 - (int)blockIdx.x; // most work first
    const int b = (int)blockIdx.y / NH, h = (int)blockIdx.y % NH;
    const long long C = (long long)NH * HS, stride = 3 * C;
    const float* qb = qkv + (long long)b * T * stride + (long long)h * HS;
    const float* kb = qb + C;
    const float* vb = qb + 2 * C;
    const float* dob = dout + (long long)b * T * C + (long long)h * HS;
    if (qt < 0) return; // grid larger than documented
    const int q0 = qt * FA_TILE;
    const float scale = 1.0f / sqrtf((float)HS);
    float* const u0 = ub;                          // Q chunk  (rows i)
    float* const u1 = ub + 1 * FA_DC_BWD * FA_LDT; // K chunk  (cols j)
    float* const u2 = ub + 2 * FA_DC_BWD * FA_LDT; // dO chunk (rows i)
    float* const u3 = ub + 3 * FA_DC_BWD * FA_LDT; // V chunk  (cols j)

    // Published by the first phase-A barrier; never rewritten.
    fa_row_stats(s_lse, s_d, dout, out, lse, b, h, q0, T, NH, HS);

    float dq[4][NK];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int k = 0; k < NK; k++) dq[a][k] = 0.0f;

    for (int kt = 0; kt <= qt; kt++) {
        const int k0 = kt * FA_TILE;
        float s[4][4], dp[4][4];
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                s[a][c] = 0.0f;
                dp[a][c] = 0.0f;
            }
        for (int d0 = 0; d0 < HS; d0 += FA_DC_BWD) {
            __syncthreads();
            fa_load_t<FA_DC_BWD>(u0, qb, q0, T, stride, d0, HS);
            fa_load_t<FA_DC_BWD>(u1, kb, k0, T, stride, d0, HS);
            fa_load_t<FA_DC_BWD>(u2, dob, q0, T, C, d0, HS);
            fa_load_t<FA_DC_BWD>(u3, vb, k0, T, stride, d0, HS);
            __syncthreads();
            fa_mma_t<FA_DC_BWD>(s, u0, u1);
            fa_mma_t<FA_DC_BWD>(dp, u2, u3);
        }

#pragma unroll
        for (int a = 0; a < 4; a++) {
            const int ir = 4 * ty + a, i = q0 + ir;
            const float li = s_lse[ir], di = s_d[ir];
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int j = k0 + tx + 16 * c;
                const bool valid = j <= i && i < T;
                const float p = valid ? expf(s[a][c] * scale - li) : 0.0f;
                dp[a][c] = p * (dp[a][c] - di); // dS
            }
        }

        fa_store_xs(xs, dp); // xs[j][i] = dS[i][j]
        fa_pass_b<HSC>(dq, xs, ub, kb, k0, T, stride, HS);
    }

#pragma unroll
    for (int a = 0; a < 4; a++) {
        const int i = q0 + 4 * ty + a;
        if (i < T) {
            float* row = dqkv + ((long long)b * T + i) * stride + (long long)h * HS;
#pragma unroll
            for (int k = 0; k < NK; k++) {
                const int d = tx + 16 * k;
                if (EXACT || d < HS) row[d] = dq[a][k] * scale;
            }
        }
    }
}

// dk, dv. Launch first (then flash_attn_bwd_dq); no scratch buffer.
// (35328 bytes of static shared memory; no dynamic shared memory)
// launch: grid ((T + 63) / 64, B * NH, 1), block (256), shared 0 bytes
extern "C" __global__ void __launch_bounds__(FA_THREADS, 2)
flash_attn_bwd(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
               int B, int T, int NH, int HS) {
    __shared__ __align__(16) float xs[FA_TILE * FA_LDT];
    __shared__ __align__(16) float ub[FA_UB];
    __shared__ float s_lse[FA_TILE], s_d[FA_TILE];
    fa_require(blockDim.x == FA_THREADS && HS >= 1 && HS <= 128);
    if ((int)blockIdx.y >= B * NH) return; // grid larger than documented
    switch (HS) {
    case 64: fa_bwd_dkdv_impl<64>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    case 128: fa_bwd_dkdv_impl<128>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    case 32: fa_bwd_dkdv_impl<32>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    case 16: fa_bwd_dkdv_impl<16>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    default: fa_bwd_dkdv_impl<0>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    }
}

// dq. Launch after flash_attn_bwd, same arguments.
// (35328 bytes of static shared memory; no dynamic shared memory)
// launch: grid ((T + 63) / 64, B * NH, 1), block (256), shared 0 bytes
extern "C" __global__ void __launch_bounds__(FA_THREADS, 2)
flash_attn_bwd_dq(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                  int B, int T, int NH, int HS) {
    __shared__ __align__(16) float xs[FA_TILE * FA_LDT];
    __shared__ __align__(16) float ub[FA_UB];
    __shared__ float s_lse[FA_TILE], s_d[FA_TILE];
    fa_require(blockDim.x == FA_THREADS && HS >= 1 && HS <= 128);
    if ((int)blockIdx.y >= B * NH) return; // grid larger than documented
    switch (HS) {
    case 64: fa_bwd_dq_impl<64>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    case 128: fa_bwd_dq_impl<128>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    case 32: fa_bwd_dq_impl<32>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    case 16: fa_bwd_dq_impl<16>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    default: fa_bwd_dq_impl<0>(dqkv, dout, qkv, out, lse, B, T, NH, HS, xs, ub, s_lse, s_d); break;
    }
}

// ----------------------------------------------------------------------------
// KV-cache decode
// ----------------------------------------------------------------------------

// One block per (b, h), 8 warps. A position is handled by a group of G lanes
// (G = smallest power of two with 4*G >= HS, at most 32); lane g of a group
// owns head dims d = g + G*c, c < 4. Each warp holds 32/G groups; group
// `gid` = warp*(32/G) + lane/G takes positions gid, gid + NG, gid + 2NG, ...
// (NG = 8*(32/G) groups in the block) and keeps an online softmax (max m,
// sum l, weighted v sum). The groups are merged in a fixed order at the end
// (deterministic). Positions 0..L-1, L = min(lens[b], TMAX).
#define DEC_THREADS 256
#define DEC_WARPS (DEC_THREADS / 32)

// (7172 bytes of static shared memory; no dynamic shared memory)
// launch: grid (B * NH, 1, 1), block (256), shared 0 bytes
extern "C" __global__ void __launch_bounds__(DEC_THREADS)
attn_decode(float* out, const float* q, const float* kcache, const float* vcache, const int* lens,
            int B, int NH, int HS, int TMAX) {
    __shared__ float s_m[256], s_l[256], s_w[256]; // NG = 8 * 32/G <= 256 (G = 1 for HS = 4)
    __shared__ float s_acc[1024];                  // NG * HS <= 8 * (32/G) * 4G = 1024
    __shared__ float s_tot;
    fa_require(blockDim.x == DEC_THREADS && HS >= 1 && HS <= 128);

    const int bh = (int)blockIdx.x;
    const int b = bh / NH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float* orow = out + (long long)bh * HS;
    int L = lens[b];
    if (L > TMAX) L = TMAX;
    if (L <= 0) { // nothing to attend to (lens[b] >= 1 by contract)
        for (int d = threadIdx.x; d < HS; d += DEC_THREADS) orow[d] = 0.0f;
        return;
    }

    int G = 1;
    while (4 * G < HS && G < 32) G *= 2;
    const int PPW = 32 / G, NG = DEC_WARPS * PPW;
    const int gi = lane / G, lg = lane % G;
    const int gid = warp * PPW + gi;
    const float scale = 1.0f / sqrtf((float)HS);

    const float* qrow = q + (long long)bh * HS;
    const float* kb = kcache + (long long)bh * TMAX * HS;
    const float* vb = vcache + (long long)bh * TMAX * HS;
    float qd[4];
#pragma unroll
    for (int c = 0; c < 4; c++) {
        const int d = lg + G * c;
        qd[c] = d < HS ? qrow[d] : 0.0f;
    }

    float m = NEG_INF, l = 0.0f, acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int t0 = warp * PPW; t0 < L; t0 += NG) { // warp-uniform
        const int t = t0 + gi;
        const bool valid = t < L;
        float part = 0.0f, v[4];
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int d = lg + G * c;
            if (valid && d < HS) {
                part += qd[c] * kb[(long long)t * HS + d];
                v[c] = vb[(long long)t * HS + d];
            } else {
                v[c] = 0.0f;
            }
        }
        for (int o = G >> 1; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
        if (valid) {
            const float s = part * scale;
            if (s > m) { // also the first position (m = -inf)
                const float alpha = expf(m - s);
                m = s;
                l = l * alpha + 1.0f;
#pragma unroll
                for (int c = 0; c < 4; c++) acc[c] = acc[c] * alpha + v[c];
            } else {
                const float p = expf(s - m);
                l += p;
#pragma unroll
                for (int c = 0; c < 4; c++) acc[c] += p * v[c];
            }
        }
    }

    if (lg == 0) {
        s_m[gid] = m;
        s_l[gid] = l;
    }
#pragma unroll
    for (int c = 0; c < 4; c++) {
        const int d = lg + G * c;
        if (d < HS) s_acc[gid * HS + d] = acc[c];
    }
    __syncthreads();
    if (warp == 0) {
        float mx = NEG_INF;
        for (int g = lane; g < NG; g += 32) mx = fmaxf(mx, s_m[g]);
        mx = warp_max(mx); // finite: group 0 saw position 0
        float tot = 0.0f;
        for (int g = lane; g < NG; g += 32) {
            const float w = expf(s_m[g] - mx); // groups with no position: 0
            s_w[g] = w;
            tot += s_l[g] * w;
        }
        tot = warp_sum(tot);
        if (lane == 0) s_tot = tot;
    }
    __syncthreads();
    const float inv = 1.0f / s_tot;
    for (int d = threadIdx.x; d < HS; d += DEC_THREADS) {
        float o = 0.0f;
        for (int g = 0; g < NG; g++) o += s_acc[g * HS + d] * s_w[g];
        orow[d] = o * inv;
    }
}

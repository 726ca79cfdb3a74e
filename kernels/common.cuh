// Shared prelude: kiln prepends this file to every kernels/*.cu before NVRTC
// compiles it, so kernels need no CUDA headers (NVRTC from the pip wheel ships
// none). bf16 is handled as raw 16-bit patterns: f32 -> bf16 rounds to
// nearest even, bf16 -> f32 is a shift, which is exactly what the hardware
// conversion instructions do.

typedef unsigned short bf16;
typedef unsigned int u32;
typedef unsigned long long u64;

// No math.h under NVRTC: infinity by its bit pattern.
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float bf16_to_f32(bf16 h) {
    return __uint_as_float(((u32)h) << 16);
}

__device__ __forceinline__ bf16 f32_to_bf16(float f) {
    u32 x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (bf16)((x >> 16) | 0x40u); // NaN stays a (quiet) NaN
    }
    x += 0x7fffu + ((x >> 16) & 1u);
    return (bf16)(x >> 16);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a whole block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result. `shared` holds at least 32 floats.
__device__ __forceinline__ float block_sum(float v, float* shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < nw ? shared[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < nw ? shared[lane] : NEG_INF;
    return warp_max(v);
}

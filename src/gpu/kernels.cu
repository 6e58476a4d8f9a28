// The trainer's CUDA kernels, compiled by NVRTC when the program starts (src/gpu/mod.rs).
// All tensors are f32, N×C×H×W, contiguous. Gradient kernels accumulate (+=) into buffers the
// host zeroes on allocation, so an activation read by several layers sums their gradients.
// Matrix products are cuBLAS calls made from the host; these are the memory-bound parts.

#define GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)blockDim.x * gridDim.x)

// Plane-wise kernels (launched by `launch_planes`): blockIdx.y strides over the planes (one
// n·C + c each), the x-threads over a plane's elements, so per element there is at most one
// 32-bit division (64-bit divisions per element made these kernels compute-bound).
#define PLANES(pl, planes) for (long long pl = blockIdx.y; pl < (planes); pl += gridDim.y)
#define INNER(q, n) for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < (n); q += blockDim.x * gridDim.x)

// ---------------------------------------------------------------- convolution helpers

// col[n][(c*K + ky)*K + kx][oy*Wo + ox] = x[n][c][oy*S - P + ky][ox*S - P + kx] (0 outside).
extern "C" __global__ void im2col(const float* x, float* col, int H, int W, int K, int S, int P,
                                  int Ho, int Wo, long long planes) {
    // blockIdx.z is the tap (ky, kx); planes are the N·C input planes.
    int kk = blockIdx.z;
    int ky = kk / K, kx = kk - ky * K;
    int HoWo = Ho * Wo;
    PLANES(pl, planes) {
        const float* src = x + pl * H * W;
        float* dst = col + (pl * K * K + kk) * HoWo;
        INNER(p, HoWo) {
            int oy = p / Wo, ox = p - oy * Wo;
            int iy = oy * S - P + ky, ix = ox * S - P + kx;
            dst[p] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? src[iy * W + ix] : 0.0f;
        }
    }
}

// The adjoint of im2col: x[n][c][iy][ix] += Σ col over every (ky, kx, oy, ox) that read it.
extern "C" __global__ void col2im_add(const float* col, float* x, int H, int W, int K, int S,
                                      int P, int Ho, int Wo, long long planes) {
    int HoWo = Ho * Wo;
    PLANES(pl, planes) {
        const float* src = col + pl * K * K * HoWo;
        float* dst = x + pl * H * W;
        INNER(q, H * W) {
            int iy = q / W, ix = q - iy * W;
            float acc = 0.0f;
            for (int ky = 0; ky < K; ++ky) {
                int ty = iy + P - ky;
                if (ty < 0 || ty % S) continue;
                int oy = ty / S;
                if (oy >= Ho) continue;
                for (int kx = 0; kx < K; ++kx) {
                    int tx = ix + P - kx;
                    if (tx < 0 || tx % S) continue;
                    int ox = tx / S;
                    if (ox >= Wo) continue;
                    acc += src[(ky * K + kx) * HoWo + oy * Wo + ox];
                }
            }
            dst[q] += acc;
        }
    }
}

// The input gradient of a stride-1 convolution is a convolution of dy with the kernel flipped
// in space and transposed in channels: wf[c][o][a][b] = w[o][c][K−1−a][K−1−b].
extern "C" __global__ void flip_weights(const float* w, float* wf, int O, int C, int K) {
    long long total = (long long)O * C * K * K;
    GRID_STRIDE(i, total) {
        int b = i % K;
        long long t = i / K;
        int a = t % K; t /= K;
        int o = t % O;
        int c = t / O;
        wf[i] = w[(((long long)o * C + c) * K + (K - 1 - a)) * K + (K - 1 - b)];
    }
}

// out[j] += Σ_b parts[b][j]: the per-image weight gradients of a batched product, summed.
extern "C" __global__ void sum_batches_add(const float* parts, float* out, int B, int len) {
    GRID_STRIDE(j, (long long)len) {
        float acc = 0.0f;
        for (int b = 0; b < B; ++b) acc += parts[(long long)b * len + j];
        out[j] += acc;
    }
}

// ---------------------------------------------------------------- batch norm

// Block reduction of two sums over 256 threads.
__device__ void block_sum2(float& a, float& b) {
    __shared__ float sa[256], sb[256];
    sa[threadIdx.x] = a; sb[threadIdx.x] = b;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) { sa[threadIdx.x] += sa[threadIdx.x + s]; sb[threadIdx.x] += sb[threadIdx.x + s]; }
        __syncthreads();
    }
    a = sa[0]; b = sb[0];
    __syncthreads();
}

// The batch statistics `mi` hold the mean in [0, C) and 1/√(var + eps) in [C, 2C).

// One block (256 threads) per channel: batch mean and 1/√(var + eps) (two passes, as the CPU),
// and the running statistics updated as PyTorch does (unbiased variance).
extern "C" __global__ void bn_stats(const float* x, float* mi, float* run_mean, float* run_var,
                                    int N, int C, int HW, float eps, float momentum) {
    float* mean = mi;
    float* invstd = mi + C;
    int c = blockIdx.x;
    int M = N * HW;
    float s = 0.0f, unused = 0.0f;
    for (int j = threadIdx.x; j < M; j += blockDim.x) {
        int n = j / HW, p = j - n * HW;
        s += x[((long long)n * C + c) * HW + p];
    }
    block_sum2(s, unused);
    float mu = s / (float)M;
    float v = 0.0f; unused = 0.0f;
    for (int j = threadIdx.x; j < M; j += blockDim.x) {
        int n = j / HW, p = j - n * HW;
        float d = x[((long long)n * C + c) * HW + p] - mu;
        v += d * d;
    }
    block_sum2(v, unused);
    if (threadIdx.x == 0) {
        float var = v / (float)M;
        mean[c] = mu;
        invstd[c] = 1.0f / sqrtf(var + eps);
        float unbias = M > 1 ? (float)M / (float)(M - 1) : 1.0f;
        run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * mu;
        run_var[c] = (1.0f - momentum) * run_var[c] + momentum * var * unbias;
    }
}

// Evaluation: the running statistics as mean and 1/√(var + eps).
extern "C" __global__ void bn_eval_stats(const float* run_mean, const float* run_var, float* mi,
                                         int C, float eps) {
    float* mean = mi;
    float* invstd = mi + C;
    GRID_STRIDE(c, (long long)C) {
        mean[c] = run_mean[c];
        invstd[c] = 1.0f / sqrtf(run_var[c] + eps);
    }
}

// y = γ(x − μ)·invstd + β, then max(y, 0) when relu.
extern "C" __global__ void bn_apply(const float* x, float* y, const float* mi,
                                    const float* gamma, const float* beta, int C, int HW,
                                    long long planes, int relu) {
    PLANES(pl, planes) {
        int c = pl % C;
        float mu = mi[c], is = mi[C + c], g = gamma[c], b = beta[c];
        long long base = pl * HW;
        INNER(p, HW) {
            float v = g * (x[base + p] - mu) * is + b;
            y[base + p] = (relu && v < 0.0f) ? 0.0f : v;
        }
    }
}

// One block per channel: Σ dy' and Σ dy'·x̂ (dy' = dy with the fused ReLU's mask), into
// sums[2c], sums[2c+1]; dγ += Σ dy'·x̂ and dβ += Σ dy'.
extern "C" __global__ void bn_backward_sums(const float* dy, const float* x, const float* mi,
                                            const float* gamma, const float* beta, float* sums,
                                            float* dgamma, float* dbeta, int N, int C, int HW,
                                            int relu) {
    const float* mean = mi;
    const float* invstd = mi + C;
    int c = blockIdx.x;
    int M = N * HW;
    float sd = 0.0f, sdx = 0.0f;
    float mu = mean[c], is = invstd[c], g = gamma[c], b = beta[c];
    for (int j = threadIdx.x; j < M; j += blockDim.x) {
        int n = j / HW, p = j - n * HW;
        long long k = ((long long)n * C + c) * HW + p;
        float xh = (x[k] - mu) * is;
        float d = dy[k];
        if (relu && g * xh + b <= 0.0f) d = 0.0f;
        sd += d;
        sdx += d * xh;
    }
    block_sum2(sd, sdx);
    if (threadIdx.x == 0) {
        sums[2 * c] = sd;
        sums[2 * c + 1] = sdx;
        dgamma[c] += sdx;
        dbeta[c] += sd;
    }
}

// dx += γ·invstd·(dy' − Σdy'/M − x̂·Σdy'x̂/M) in training; γ·invstd·dy' in evaluation.
// flags: bit 0 = fused ReLU, bit 1 = training.
extern "C" __global__ void bn_backward_apply(const float* dy, const float* x, const float* mi,
                                             const float* gamma, const float* beta,
                                             const float* sums, float* dx, int C, int HW,
                                             long long planes, int flags) {
    int relu = flags & 1, train = flags & 2;
    float M = (float)(planes / C) * (float)HW;
    PLANES(pl, planes) {
        int c = pl % C;
        float mu = mi[c], is = mi[C + c], g = gamma[c], b = beta[c];
        float s0 = sums[2 * c] / M, s1 = sums[2 * c + 1] / M;
        long long base = pl * HW;
        INNER(p, HW) {
            long long i = base + p;
            float xh = (x[i] - mu) * is;
            float d = dy[i];
            if (relu && g * xh + b <= 0.0f) d = 0.0f;
            if (train) d = d - s0 - xh * s1;
            dx[i] += g * is * d;
        }
    }
}

// ---------------------------------------------------------------- elementwise

extern "C" __global__ void relu_fwd(const float* x, float* y, long long total) {
    GRID_STRIDE(i, total) { y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
}

// dx += dy where y > 0.
extern "C" __global__ void relu_bwd(const float* dy, const float* y, float* dx, long long total) {
    GRID_STRIDE(i, total) { if (y[i] > 0.0f) dx[i] += dy[i]; }
}

// Dropout's draw for element i: SplitMix64's output function of key + i·γ, the integers
// `backend::DropMask::keeps` computes on the CPU (key and threshold arrive as the bits of u64).
__device__ __forceinline__ bool dropout_keeps(unsigned long long key, unsigned long long threshold,
                                              long long i) {
    unsigned long long z = key + (unsigned long long)i * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    return z >= threshold;
}

// y = x·scale where kept, 0 elsewhere.
extern "C" __global__ void dropout_fwd(const float* x, float* y, long long key, long long threshold,
                                       float scale, long long total) {
    GRID_STRIDE(i, total) {
        y[i] = dropout_keeps((unsigned long long)key, (unsigned long long)threshold, i) ? x[i] * scale : 0.0f;
    }
}

// dx += dy·scale where kept.
extern "C" __global__ void dropout_bwd(const float* dy, float* dx, long long key, long long threshold,
                                       float scale, long long total) {
    GRID_STRIDE(i, total) {
        if (dropout_keeps((unsigned long long)key, (unsigned long long)threshold, i)) dx[i] += dy[i] * scale;
    }
}

// y += x.
extern "C" __global__ void add_into(const float* x, float* y, long long total) {
    GRID_STRIDE(i, total) { y[i] += x[i]; }
}

// y += a·x.
extern "C" __global__ void add_scaled(const float* x, float* y, float a, long long total) {
    GRID_STRIDE(i, total) { y[i] += a * x[i]; }
}

// y *= keep elementwise (a pruned network's gradient: keep is 1 for kept weights, 0 for pruned
// ones, so a pruned weight, zero with zero optimiser state, stays exactly zero).
extern "C" __global__ void mask_grad(const float* keep, float* y, long long total) {
    GRID_STRIDE(i, total) { y[i] *= keep[i]; }
}

// x *= a (a rank's share of a data-parallel gradient before the all-reduce).
extern "C" __global__ void scale_by(float* x, float a, long long total) {
    GRID_STRIDE(i, total) { x[i] *= a; }
}

// Channel block copy: dst[n][off + c][p] = src[n][c][p] (src has Cs channels, dst Cd); planes
// are the N·Cs source planes.
extern "C" __global__ void copy_channels(const float* src, float* dst, int Cs, int Cd, int off,
                                         int HW, long long planes) {
    PLANES(pl, planes) {
        long long n = pl / Cs;
        long long c = pl - n * Cs;
        const float* s = src + pl * HW;
        float* d = dst + (n * Cd + off + c) * HW;
        INNER(p, HW) { d[p] = s[p]; }
    }
}

// The adjoint: dsrc[n][c][p] += ddst[n][off + c][p].
extern "C" __global__ void slice_channels_add(const float* ddst, float* dsrc, int Cs, int Cd,
                                              int off, int HW, long long planes) {
    PLANES(pl, planes) {
        long long n = pl / Cs;
        long long c = pl - n * Cs;
        const float* s = ddst + (n * Cd + off + c) * HW;
        float* d = dsrc + pl * HW;
        INNER(p, HW) { d[p] += s[p]; }
    }
}

// ---------------------------------------------------------------- pooling and shortcut

// Option-A shortcut: y[n][before + c][oy][ox] = x[n][c][oy*S][ox*S], other channels 0.
extern "C" __global__ void shortcut_fwd(const float* x, float* y, int N, int C, int H, int W,
                                        int Co, int before, int S, int Ho, int Wo) {
    long long total = (long long)N * Co * Ho * Wo;
    GRID_STRIDE(i, total) {
        int ox = i % Wo;
        long long t = i / Wo;
        int oy = t % Ho; t /= Ho;
        int co = t % Co;
        long long n = t / Co;
        int c = co - before;
        y[i] = (c >= 0 && c < C) ? x[((n * C + c) * H + oy * S) * W + ox * S] : 0.0f;
    }
}

extern "C" __global__ void shortcut_bwd(const float* dy, float* dx, int N, int C, int H, int W,
                                        int Co, int before, int S, int Ho, int Wo) {
    long long total = (long long)N * C * Ho * Wo;
    GRID_STRIDE(i, total) {
        int ox = i % Wo;
        long long t = i / Wo;
        int oy = t % Ho; t /= Ho;
        int c = t % C;
        long long n = t / C;
        dx[((n * C + c) * H + oy * S) * W + ox * S] +=
            dy[((n * Co + before + c) * Ho + oy) * Wo + ox];
    }
}

// Average pooling, K×K windows, stride S, no padding.
extern "C" __global__ void avg_pool_fwd(const float* x, float* y, long long planes, int H, int W,
                                        int K, int S, int Ho, int Wo) {
    long long total = planes * Ho * Wo;
    float inv = 1.0f / (K * K);
    GRID_STRIDE(i, total) {
        int ox = i % Wo;
        long long t = i / Wo;
        int oy = t % Ho;
        long long pl = t / Ho;
        const float* src = x + pl * H * W;
        float acc = 0.0f;
        for (int a = 0; a < K; ++a)
            for (int b = 0; b < K; ++b) acc += src[(oy * S + a) * W + ox * S + b];
        y[i] = acc * inv;
    }
}

// Gather form: each input pixel sums the windows that contain it (no atomics).
extern "C" __global__ void avg_pool_bwd(const float* dy, float* dx, long long planes, int H,
                                        int W, int K, int S, int Ho, int Wo) {
    long long total = planes * H * W;
    float inv = 1.0f / (K * K);
    GRID_STRIDE(i, total) {
        int ix = i % W;
        long long t = i / W;
        int iy = t % H;
        long long pl = t / H;
        float acc = 0.0f;
        for (int oy = 0; oy < Ho; ++oy) {
            if (iy < oy * S || iy >= oy * S + K) continue;
            for (int ox = 0; ox < Wo; ++ox) {
                if (ix < ox * S || ix >= ox * S + K) continue;
                acc += dy[(pl * Ho + oy) * Wo + ox];
            }
        }
        dx[i] += acc * inv;
    }
}

// Max pooling with padding (padding never wins); the winner's plane offset goes to arg.
extern "C" __global__ void max_pool_fwd(const float* x, float* y, int* arg, long long planes,
                                        int H, int W, int K, int S, int P, int Ho, int Wo) {
    long long total = planes * Ho * Wo;
    GRID_STRIDE(i, total) {
        int ox = i % Wo;
        long long t = i / Wo;
        int oy = t % Ho;
        long long pl = t / Ho;
        const float* src = x + pl * H * W;
        float best = __int_as_float(0xff800000);  // −∞ (NVRTC has no math.h)
        int at = -1;
        for (int a = 0; a < K; ++a) {
            int iy = oy * S - P + a;
            if (iy < 0 || iy >= H) continue;
            for (int b = 0; b < K; ++b) {
                int ix = ox * S - P + b;
                if (ix < 0 || ix >= W) continue;
                float v = src[iy * W + ix];
                if (at < 0 || v > best) { best = v; at = iy * W + ix; }
            }
        }
        y[i] = best;
        arg[i] = at;
    }
}

extern "C" __global__ void max_pool_bwd(const float* dy, const int* arg, float* dx,
                                        long long planes, int H, int W, int Ho, int Wo) {
    long long total = planes * Ho * Wo;
    GRID_STRIDE(i, total) {
        long long pl = i / (Ho * Wo);
        atomicAdd(&dx[pl * H * W + arg[i]], dy[i]);
    }
}

// One warp-strided thread per plane is too slow for big planes; one block (256) per plane.
extern "C" __global__ void global_avg_fwd(const float* x, float* y, int HW) {
    long long pl = blockIdx.x;
    float s = 0.0f, unused = 0.0f;
    for (int p = threadIdx.x; p < HW; p += blockDim.x) s += x[pl * HW + p];
    block_sum2(s, unused);
    if (threadIdx.x == 0) y[pl] = s / (float)HW;
}

extern "C" __global__ void global_avg_bwd(const float* dy, float* dx, long long planes, int HW) {
    long long total = planes * HW;
    GRID_STRIDE(i, total) { dx[i] += dy[i / HW] / (float)HW; }
}

// ---------------------------------------------------------------- linear, loss, optimisers

// y[n][j] += b[j].
extern "C" __global__ void add_bias(float* y, const float* b, int N, int F) {
    GRID_STRIDE(i, (long long)N * F) { y[i] += b[i % F]; }
}

// db[j] += Σ_n dy[n][j].
extern "C" __global__ void bias_grad(const float* dy, float* db, int N, int F) {
    GRID_STRIDE(j, (long long)F) {
        float acc = 0.0f;
        for (int n = 0; n < N; ++n) acc += dy[(long long)n * F + j];
        db[j] += acc;
    }
}

// Per row: loss = logsumexp − z[label], dz = (softmax − onehot)/N, correct = argmax == label
// (first maximum, as the CPU).
extern "C" __global__ void softmax_xent(const float* z, const int* labels, float* loss,
                                        float* dz, int* correct, int N, int K) {
    GRID_STRIDE(r, (long long)N) {
        const float* row = z + r * K;
        float mx = row[0];
        int best = 0;
        for (int k = 1; k < K; ++k) if (row[k] > mx) { mx = row[k]; best = k; }
        float se = 0.0f;
        for (int k = 0; k < K; ++k) se += expf(row[k] - mx);
        float lse = mx + logf(se);
        int l = labels[r];
        loss[r] = lse - row[l];
        correct[r] = best == l;
        for (int k = 0; k < K; ++k)
            dz[r * K + k] = (expf(row[k] - lse) - (k == l ? 1.0f : 0.0f)) / (float)N;
    }
}

// PyTorch's SGD: d = g + wd·w; b = first ? d : μb + d; w −= lr·(nesterov ? d + μb : b).
extern "C" __global__ void sgd_update(float* w, const float* g, float* b, long long n, float lr,
                                      float momentum, float wd, int nesterov, int first) {
    GRID_STRIDE(i, n) {
        float d = g[i] + wd * w[i];
        float m = first ? d : momentum * b[i] + d;
        b[i] = m;
        w[i] -= lr * (nesterov ? d + momentum * m : m);
    }
}

// Adam with the host's coefficients (optim::ADAM), weight decay added to the gradient; c1, c2 =
// bias corrections.
extern "C" __global__ void adam_update(float* w, const float* g, float* m, float* v, long long n,
                                       float lr, float wd, float c1, float c2, float b1, float b2,
                                       float eps) {
    GRID_STRIDE(i, n) {
        float d = g[i] + wd * w[i];
        m[i] = b1 * m[i] + (1.0f - b1) * d;
        v[i] = b2 * v[i] + (1.0f - b2) * d * d;
        w[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

// ---------------------------------------------------------------- convolution bias

// y[n][c][p] += b[c], planes of HW values.
extern "C" __global__ void add_channel_bias(float* y, const float* b, int C, int HW, long long total) {
    GRID_STRIDE(i, total) { y[i] += b[(i / HW) % C]; }
}

// db[c] += Σ_{n,p} dy[n][c][p]: one block per channel.
extern "C" __global__ void channel_bias_grad(const float* dy, float* db, int N, int C, int HW) {
    int c = blockIdx.x;
    long long per = (long long)N * HW;
    float s = 0.0f, unused = 0.0f;
    for (long long t = threadIdx.x; t < per; t += blockDim.x) {
        long long n = t / HW, p = t % HW;
        s += dy[(n * C + c) * HW + p];
    }
    block_sum2(s, unused);
    if (threadIdx.x == 0) db[c] += s;
}

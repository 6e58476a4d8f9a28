//! Each convolution path against a naive reference, gradients against finite differences.

use super::*;
use crate::backend::ConvOps;
use crate::cpu::read;
use crate::cpu::testutil::*;

/// Direct 7-loop convolution.
fn naive(x: &[f64], w: &[f64], n: usize, h: usize, wd: usize, cfg: &ConvCfg) -> Vec<f64> {
    let (ho, wo) = (cfg.out_size(h), cfg.out_size(wd));
    let k = cfg.kernel;
    let mut out = vec![0.0; n * cfg.out_ch * ho * wo];
    for b in 0..n {
        for o in 0..cfg.out_ch {
            for y in 0..ho {
                for xo in 0..wo {
                    let mut s = 0.0;
                    // Output channel o reads the input channels of its group only.
                    let (cg, og) = (cfg.in_ch / cfg.groups, cfg.out_ch / cfg.groups);
                    let first = (o / og) * cg;
                    for cl in 0..cg {
                        let c = first + cl;
                        for i in 0..k {
                            for j in 0..k {
                                let iy = (y * cfg.stride + i) as isize - cfg.padding as isize;
                                let ix = (xo * cfg.stride + j) as isize - cfg.padding as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    s += x[((b * cfg.in_ch + c) * h + iy as usize) * wd
                                        + ix as usize]
                                        * w[((o * cg + cl) * k + i) * k + j];
                                }
                            }
                        }
                    }
                    out[((b * cfg.out_ch + o) * ho + y) * wo + xo] = s;
                }
            }
        }
    }
    out
}

/// Both gradients of an ungrouped convolution by the definition: `gx[b][c][iy][ix]` and
/// `gw[o][c][i][j]` summed over every output that reads that input pixel with that tap.
fn naive_grads(
    x: &[f64],
    w: &[f64],
    gy: &[f64],
    (n, h, wd): (usize, usize, usize),
    cfg: &ConvCfg,
) -> (Vec<f64>, Vec<f64>) {
    let (ho, wo, k) = (cfg.out_size(h), cfg.out_size(wd), cfg.kernel);
    let (mut gx, mut gw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
    for b in 0..n {
        for o in 0..cfg.out_ch {
            for y in 0..ho {
                for xo in 0..wo {
                    let g = gy[((b * cfg.out_ch + o) * ho + y) * wo + xo];
                    for c in 0..cfg.in_ch {
                        for i in 0..k {
                            for j in 0..k {
                                let iy = (y * cfg.stride + i) as isize - cfg.padding as isize;
                                let ix = (xo * cfg.stride + j) as isize - cfg.padding as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    let xi =
                                        ((b * cfg.in_ch + c) * h + iy as usize) * wd + ix as usize;
                                    let wi = ((o * cfg.in_ch + c) * k + i) * k + j;
                                    gx[xi] += g * w[wi];
                                    gw[wi] += g * x[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (gx, gw)
}

fn check(cfg: ConvCfg, n: usize, h: usize, wd: usize) {
    check_with(cfg, n, h, wd, false)
}

/// `naive` plus a bias per output channel.
fn naive_biased(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    (n, h, wd): (usize, usize, usize),
    cfg: &ConvCfg,
) -> Vec<f64> {
    let hw = cfg.out_size(h) * cfg.out_size(wd);
    let mut y = naive(x, w, n, h, wd, cfg);
    for (p, plane) in y.chunks_mut(hw).enumerate() {
        for v in plane {
            *v += b[p % cfg.out_ch];
        }
    }
    y
}

/// One configuration against the naive loops (forward) and finite differences (gradients of
/// the input, the weight and, with `bias`, the bias), directly and through the tape.
fn check_with(cfg: ConvCfg, n: usize, h: usize, wd: usize, bias: bool) {
    let xv = rand_vec(n * cfg.in_ch * h * wd, 3);
    let wv = rand_vec(cfg.weight_len(), 4);
    let bv = if bias {
        rand_vec(cfg.out_ch, 6)
    } else {
        vec![0.0; cfg.out_ch]
    };
    let dims = (n, h, wd);
    let want = naive_biased(&xv, &wv, &bv, dims, &cfg);
    // Forward without recording against the naive loops.
    let mut ctx = CpuBackend::new(true, false);
    let x = ctx.act(xv.clone(), [n, cfg.in_ch, h, wd]);
    let bp = bias.then(|| Param::new(1, bv.clone()));
    let got = read(
        &ctx.conv2d(&x, &Param::new(0, wv.clone()), bp.as_ref(), cfg)
            .unwrap()
            .0,
    );
    assert!(rel_err(&got, &want) < 1e-12, "{cfg:?} forward");
    // Through the trainer's tape: forward again, gradients against finite differences of
    // Σ out·r.
    let op = sparsenet_net::Op::Conv {
        in_ch: cfg.in_ch,
        out_ch: cfg.out_ch,
        kernel: cfg.kernel,
        stride: cfg.stride,
        padding: cfg.padding,
        bias,
        groups: cfg.groups,
    };
    let mut ps = vec![wv.clone()];
    if bias {
        ps.push(bv.clone());
    }
    let run = run_op(
        &op,
        false,
        true,
        &[(xv.clone(), [n, cfg.in_ch, h, wd])],
        &[0],
        &ps,
        None,
        5,
    );
    assert!(
        rel_err(&run.out, &want) < 1e-12,
        "{cfg:?} forward on the tape"
    );
    let r = &run.weights;
    let nx = numeric_grad(&xv, |xs| {
        weighted_sum(&naive_biased(xs, &wv, &bv, dims, &cfg), r)
    });
    let nw = numeric_grad(&wv, |ws| {
        weighted_sum(&naive_biased(&xv, ws, &bv, dims, &cfg), r)
    });
    let (gx, gw) = (&run.input_grads[0], &run.param_grads[0]);
    assert!(rel_err(gx, &nx) < 1e-7, "{cfg:?} dx {}", rel_err(gx, &nx));
    assert!(rel_err(gw, &nw) < 1e-7, "{cfg:?} dw {}", rel_err(gw, &nw));
    if bias {
        let nb = numeric_grad(&bv, |bs| {
            weighted_sum(&naive_biased(&xv, &wv, bs, dims, &cfg), r)
        });
        let gb = &run.param_grads[1];
        assert!(rel_err(gb, &nb) < 1e-7, "{cfg:?} db {}", rel_err(gb, &nb));
    }
}

#[test]
fn bias_of_every_algorithm_against_the_naive_loops_and_finite_differences() {
    // LeNet's 5×5 layers (im2col), a 3×3 "same" layer (direct), a pointwise one, on batches
    // below and above SMALL_BATCH.
    for n in [1, SMALL_BATCH + 1] {
        for (kernel, stride, padding) in [(5, 1, 0), (3, 1, 1), (1, 1, 0), (3, 2, 1)] {
            let cfg = ConvCfg {
                in_ch: 3,
                out_ch: 4,
                kernel,
                stride,
                padding,
                groups: 1,
            };
            assert_eq!(
                ConvAlgo::choose(&cfg),
                match (kernel, stride) {
                    (1, 1) => ConvAlgo::Pointwise,
                    (3, 1) => ConvAlgo::Direct3x3,
                    _ => ConvAlgo::Im2col,
                }
            );
            check_with(cfg, n, 9, 8, true);
        }
    }
}

#[test]
fn grouped_convolutions_of_every_algorithm_against_the_naive_loops_and_finite_differences() {
    // DPN's grouped 3×3 (direct per group), a strided one (im2col per group), a grouped
    // pointwise one and a depthwise one (groups = channels), with and without bias, on batches
    // below and above SMALL_BATCH and CHUNKS.
    for n in [1, SMALL_BATCH + 1, CHUNKS + 3] {
        for (in_ch, out_ch, kernel, stride, padding, groups) in [
            (4, 6, 3, 1, 1, 2),
            (6, 3, 3, 2, 1, 3),
            (4, 4, 1, 1, 0, 2),
            (3, 3, 3, 1, 1, 3),
        ] {
            let cfg = ConvCfg {
                in_ch,
                out_ch,
                kernel,
                stride,
                padding,
                groups,
            };
            check_with(cfg, n, 5, 6, n == 1);
        }
    }
}

#[test]
fn wide_3x3_layers_go_to_im2col_and_agree_with_the_naive_loops() {
    let cfg = ConvCfg {
        in_ch: 3,
        out_ch: WIDE_3X3,
        kernel: 3,
        stride: 1,
        padding: 1,
        groups: 1,
    };
    assert_eq!(ConvAlgo::choose(&cfg), ConvAlgo::Im2col);
    let narrower = ConvCfg {
        out_ch: WIDE_3X3 - 1,
        ..cfg
    };
    assert_eq!(ConvAlgo::choose(&narrower), ConvAlgo::Direct3x3);
    check(cfg, 2, 4, 3);
}

#[test]
fn conv3x3_padded() {
    check(
        ConvCfg {
            in_ch: 3,
            out_ch: 4,
            kernel: 3,
            stride: 1,
            padding: 1,
            groups: 1,
        },
        2,
        5,
        6,
    );
}

#[test]
fn same_convolutions_direct_3x3_and_5x5_by_im2col() {
    check(
        ConvCfg {
            in_ch: 3,
            out_ch: 5,
            kernel: 3,
            stride: 1,
            padding: 1,
            groups: 1,
        },
        3,
        4,
        6,
    );
    check(
        ConvCfg {
            in_ch: 2,
            out_ch: 3,
            kernel: 5,
            stride: 1,
            padding: 2,
            groups: 1,
        },
        2,
        6,
        5,
    );
    check(
        ConvCfg {
            in_ch: 7,
            out_ch: 2,
            kernel: 3,
            stride: 1,
            padding: 1,
            groups: 1,
        },
        1,
        1,
        1,
    );
}

#[test]
fn conv_narrowing_uses_the_transposed_input_gradient() {
    // out < in, stride 1: the input gradient goes through the transposed-convolution path.
    check(
        ConvCfg {
            in_ch: 6,
            out_ch: 2,
            kernel: 3,
            stride: 1,
            padding: 1,
            groups: 1,
        },
        2,
        5,
        4,
    );
    check(
        ConvCfg {
            in_ch: 5,
            out_ch: 3,
            kernel: 3,
            stride: 1,
            padding: 0,
            groups: 1,
        },
        1,
        6,
        5,
    );
    check(
        ConvCfg {
            in_ch: 4,
            out_ch: 1,
            kernel: 5,
            stride: 1,
            padding: 2,
            groups: 1,
        },
        2,
        5,
        5,
    );
}

#[test]
fn conv_strided_and_pointwise_and_7x7() {
    check(
        ConvCfg {
            in_ch: 2,
            out_ch: 3,
            kernel: 3,
            stride: 2,
            padding: 1,
            groups: 1,
        },
        3,
        7,
        6,
    );
    check(
        ConvCfg {
            in_ch: 5,
            out_ch: 2,
            kernel: 1,
            stride: 1,
            padding: 0,
            groups: 1,
        },
        9,
        4,
        4,
    );
    check(
        ConvCfg {
            in_ch: 2,
            out_ch: 2,
            kernel: 7,
            stride: 2,
            padding: 3,
            groups: 1,
        },
        1,
        9,
        9,
    );
    check(
        ConvCfg {
            in_ch: 2,
            out_ch: 3,
            kernel: 1,
            stride: 2,
            padding: 0,
            groups: 1,
        },
        2,
        5,
        5,
    );
}

#[test]
fn batches_below_and_above_the_small_batch_limit_take_both_paths() {
    // Below SMALL_BATCH the forward pass cuts each sample's columns into blocks; at or above
    // it, samples run in parallel whole. Both against the naive loops, for each kind of conv.
    const { assert!(SMALL_BATCH > 1) };
    for n in [1, SMALL_BATCH - 1, SMALL_BATCH, SMALL_BATCH + 1] {
        for (kernel, stride, padding) in [(3, 1, 1), (1, 1, 0), (3, 2, 1), (7, 2, 3)] {
            let cfg = ConvCfg {
                in_ch: 3,
                out_ch: 4,
                kernel,
                stride,
                padding,
                groups: 1,
            };
            check(cfg, n, 9, 7);
        }
    }
}

/// `len` random values (`rand_vec(len, seed)`) in f32.
fn f32s(len: usize, seed: u64) -> Vec<f32> {
    rand_vec(len, seed).into_iter().map(|v| v as f32).collect()
}

/// `f` run on a pool of `threads` threads.
fn on_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// A 3×3 "same" convolution from `in_ch` to `out_ch` channels.
fn same3(in_ch: usize, out_ch: usize) -> ConvCfg {
    ConvCfg {
        in_ch,
        out_ch,
        kernel: 3,
        stride: 1,
        padding: 1,
        groups: 1,
    }
}

#[test]
fn column_blocks_do_not_depend_on_the_thread_count() {
    // Batch 1 (the column-block path) in f32, on pools of 1 and 3 threads: the same bits.
    let cfg = same3(16, 24);
    let (h, wd) = (23, 19);
    let xv = f32s(cfg.in_ch * h * wd, 31);
    let wv = f32s(cfg.out_ch * cfg.in_ch * 9, 32);
    let run = |threads: usize| -> Vec<f32> {
        on_pool(threads, || {
            let mut ctx = CpuBackend::new(false, false);
            let x = ctx.act(xv.clone(), [1, cfg.in_ch, h, wd]);
            read(
                &ctx.conv2d(&x, &Param::new(0, wv.clone()), None, cfg)
                    .unwrap()
                    .0,
            )
        })
    };
    let one = run(1);
    assert_eq!(one, run(3));
    assert!(one.iter().any(|&v| v != 0.0));
}

#[test]
fn direct_kernel_gives_the_same_bits_by_column_blocks_and_whole() {
    // A 3×3 layer on a batch of 1 (positions cut into column blocks) and on a batch of
    // SMALL_BATCH + 1 whose first sample is the same image (samples whole): the direct kernel
    // sums every output in one order, so the first sample's outputs agree bit for bit.
    let cfg = same3(7, 13);
    let (h, wd, n) = (11, 9, SMALL_BATCH + 1);
    let xv = f32s(n * cfg.in_ch * h * wd, 41);
    let wv = f32s(cfg.out_ch * cfg.in_ch * 9, 42);
    let mut ctx = CpuBackend::new(false, false);
    let w = Param::new(0, wv);
    let one = ctx.act(xv[..cfg.in_ch * h * wd].to_vec(), [1, cfg.in_ch, h, wd]);
    let all = ctx.act(xv, [n, cfg.in_ch, h, wd]);
    let y1 = read(&ctx.conv2d(&one, &w, None, cfg).unwrap().0);
    let yn = read(&ctx.conv2d(&all, &w, None, cfg).unwrap().0);
    assert_eq!(y1, yn[..y1.len()]);
}

#[test]
fn small_planes_sum_a_chunk_of_samples_in_one_pass() {
    // More samples than CHUNKS: each chunk holds several, whose weight gradients the direct
    // kernel sums in one pass on small planes (narrowing: with the transposed input gradient;
    // widening: weight gradient grouped only when no input gradient is asked for, which the
    // check's tape always asks — so the narrowing case is the grouped one).
    let n = 2 * CHUNKS + 1;
    for (in_ch, out_ch) in [(5, 3), (2, 4)] {
        check(same3(in_ch, out_ch), n, 4, 3);
    }
}

/// One forward and backward pass of `cfg` in f32 on a pool of `threads`: the output, the
/// weight gradient and the input gradient.
fn pass_on_pool(
    threads: usize,
    cfg: ConvCfg,
    dims: [usize; 4],
    xv: &[f32],
    wv: &[f32],
    gy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    on_pool(threads, || {
        let mut ctx = CpuBackend::new(true, true);
        let x = ctx.act(xv.to_vec(), dims);
        let w = Param::new(0, wv.to_vec());
        let (y, saved) = ctx.conv2d(&x, &w, None, cfg).unwrap();
        let mut dx = None;
        ctx.conv2d_backward(saved, &w, None, cfg, gy.to_vec(), Some(&mut dx))
            .unwrap();
        let gw = ctx.take_param_grads(std::slice::from_ref(&w)).remove(0);
        (read(&y), gw, dx.expect("an input gradient"))
    })
}

#[test]
fn backward_does_not_depend_on_the_thread_count() {
    // Both gradients of a narrowing 3×3 layer in f32 on pools of 1 and 3 threads: the same
    // bits, for a small plane (a chunk's weight gradients summed in one pass) and a large one
    // (sample by sample).
    let cfg = same3(9, 5);
    for (n, hw) in [(2 * CHUNKS + 3, 6), (CHUNKS + 1, 24)] {
        let xv = f32s(n * cfg.in_ch * hw * hw, 51);
        let wv = f32s(cfg.out_ch * cfg.in_ch * 9, 52);
        let gy = f32s(n * cfg.out_ch * hw * hw, 53);
        let run = |threads| pass_on_pool(threads, cfg, [n, cfg.in_ch, hw, hw], &xv, &wv, &gy);
        let one = run(1);
        assert_eq!(one, run(3), "{n} samples of {hw}×{hw}");
        assert!(one.1.iter().any(|&v| v != 0.0) && one.2.iter().any(|&v| v != 0.0));
    }
}

#[test]
fn winograd_against_the_naive_loops_on_odd_and_even_planes_and_several_groups() {
    // The algorithm itself on small layers (the dispatcher sends only wide ones to it): odd
    // planes (tiles past the edge), planes smaller than a tile, and products of 8 columns so
    // that a chunk of samples spans several groups, the last one short.
    for (in_ch, out_ch, h, wd, n) in [
        (3, 4, 5, 7, 5),
        (2, 3, 4, 4, 3),
        (4, 2, 1, 2, 4),
        (5, 6, 6, 3, 1),
    ] {
        let cfg = same3(in_ch, out_ch);
        let xv = rand_vec(n * in_ch * h * wd, 61);
        let wv = rand_vec(cfg.weight_len(), 62);
        let gy = rand_vec(n * out_ch * h * wd, 63);
        let (in_sz, out_sz) = (in_ch * h * wd, out_ch * h * wd);
        let want = naive(&xv, &wv, n, h, wd, &cfg);
        let (want_gx, want_gw) = naive_grads(&xv, &wv, &gy, (n, h, wd), &cfg);
        let plan = winograd::Winograd::new(cfg, h, wd, &wv).with_columns(8);
        for blocks in [false, true] {
            let mut out = vec![f64::NAN; n * out_sz];
            plan.forward(&xv, &mut out, n, blocks);
            assert!(rel_err(&out, &want) < 1e-13, "{cfg:?} {h}×{wd} forward");
        }
        let mut one = vec![f64::NAN; out_sz];
        plan.forward(&xv[..in_sz], &mut one, 1, false);
        assert!(rel_err(&one, &want[..out_sz]) < 1e-13, "{cfg:?} one sample");
        let mut gw = vec![0.0; wv.len()];
        let mut gx: Vec<f64> = Vec::with_capacity(n * in_sz);
        plan.backward(
            &xv,
            &gy,
            n,
            &mut gw,
            Some(&mut gx.spare_capacity_mut()[..n * in_sz]),
        );
        // SAFETY: the backward pass writes every sample's input gradient whole.
        unsafe { gx.set_len(n * in_sz) };
        assert!(rel_err(&gw, &want_gw) < 1e-13, "{cfg:?} {h}×{wd} dw");
        assert!(rel_err(&gx, &want_gx) < 1e-13, "{cfg:?} {h}×{wd} dx");
        // The weight gradient alone, added onto what is there.
        let mut gw2 = vec![1.0; wv.len()];
        plan.backward(&xv, &gy, n, &mut gw2, None);
        let shifted: Vec<f64> = want_gw.iter().map(|v| v + 1.0).collect();
        assert!(rel_err(&gw2, &shifted) < 1e-13, "{cfg:?} dw alone");
    }
}

#[test]
fn wide_3x3_layers_with_wide_inputs_go_to_winograd_and_agree_with_the_naive_loops() {
    let cfg = same3(WINOGRAD_MIN_IN, WIDE_3X3);
    assert_eq!(ConvAlgo::choose(&cfg), ConvAlgo::Winograd);
    let thin = same3(WINOGRAD_MIN_IN - 1, WIDE_3X3);
    assert_eq!(ConvAlgo::choose(&thin), ConvAlgo::Im2col);
    let strided = ConvCfg { stride: 2, ..cfg };
    assert_eq!(ConvAlgo::choose(&strided), ConvAlgo::Im2col);
    // Through the dispatcher (forward groups, backward chunks), batches on both sides of
    // SMALL_BATCH, against the naive loops.
    // 9×10: 25 tiles a sample, 5 samples a product: 11 samples make 3 forward calls and 3
    // backward chunks, the last of one sample.
    for (n, h, wd) in [(1, 3, 5), (CHUNKS + 3, 9, 10)] {
        let xv = rand_vec(n * cfg.in_ch * h * wd, 71);
        let wv = rand_vec(cfg.weight_len(), 72);
        let gy = rand_vec(n * cfg.out_ch * h * wd, 73);
        let mut ctx = CpuBackend::new(true, true);
        let x = ctx.act(xv.clone(), [n, cfg.in_ch, h, wd]);
        let w = Param::new(0, wv.clone());
        let (y, saved) = ctx.conv2d(&x, &w, None, cfg).unwrap();
        assert!(rel_err(&read(&y), &naive(&xv, &wv, n, h, wd, &cfg)) < 1e-12);
        let mut dx = None;
        ctx.conv2d_backward(saved, &w, None, cfg, gy.clone(), Some(&mut dx))
            .unwrap();
        let gw = ctx.take_param_grads(std::slice::from_ref(&w)).remove(0);
        let (want_gx, want_gw) = naive_grads(&xv, &wv, &gy, (n, h, wd), &cfg);
        assert!(rel_err(&gw, &want_gw) < 1e-12, "{n} samples dw");
        assert!(rel_err(&dx.unwrap(), &want_gx) < 1e-12, "{n} samples dx");
    }
}

#[test]
fn winograd_does_not_depend_on_the_thread_count() {
    // Forward and both gradients of a Winograd layer in f32 on pools of 1 and 3 threads, on a
    // batch of 1 (products split over threads) and one of several chunks: the same bits.
    let cfg = same3(WINOGRAD_MIN_IN, WIDE_3X3);
    // 12×12: 36 tiles a sample, 3 samples a product, so 11 samples make 4 backward chunks.
    for (n, hw) in [(1, 6), (CHUNKS + 3, 12)] {
        let xv = f32s(n * cfg.in_ch * hw * hw, 81);
        let wv = f32s(cfg.weight_len(), 82);
        let gy = f32s(n * cfg.out_ch * hw * hw, 83);
        let run = |threads| pass_on_pool(threads, cfg, [n, cfg.in_ch, hw, hw], &xv, &wv, &gy);
        let one = run(1);
        assert_eq!(one, run(3), "{n} samples of {hw}×{hw}");
        assert!(one.0.iter().any(|&v| v != 0.0) && one.2.iter().any(|&v| v != 0.0));
    }
}

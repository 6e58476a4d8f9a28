//! One "same" convolution layer on the CPU (3×3 unless a kernel size is given): forward, weight
//! gradient and input gradient, each the best of 7 runs, in ms and GFLOP/s (2·N·out·in·k²·H·W
//! per pass).
//!
//! `cargo bench --bench conv_layer -- N IN HW OUT [KERNEL]` (default `64 96 32 24 3`: a
//! SparseNet-40-24 layer in the first block). Threads: rayon's default (`RAYON_NUM_THREADS`).

use sparsenet::backend::{ConvCfg, ConvOps};
use sparsenet::cpu::{Act, CpuBackend, Param};
use std::time::Instant;

fn main() {
    sparsenet::alloc::retain_freed_memory();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .map(|a| a.parse().expect("N IN HW OUT: whole numbers"))
        .collect();
    let [n, cin, hw, cout, k] = match args[..] {
        [] => [64, 96, 32, 24, 3],
        [a, b, c, d] => [a, b, c, d, 3],
        [a, b, c, d, e] => [a, b, c, d, e],
        _ => panic!("usage: conv_layer N IN HW OUT [KERNEL]"),
    };
    let cfg = ConvCfg {
        in_ch: cin,
        out_ch: cout,
        kernel: k,
        stride: 1,
        padding: k / 2,
        groups: 1,
    };
    let x: Vec<f32> = (0..n * cin * hw * hw)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let w = Param::new(
        0,
        (0..cout * cin * k * k)
            .map(|i| ((i * 31) % 100) as f32 / 100.0 - 0.5)
            .collect(),
    );
    let x = Act::new(x, [n, cin, hw, hw]);
    let flops = 2.0 * (n * cout * cin * k * k * hw * hw) as f64;
    let (mut fwd, mut both, mut wgrad) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..7 {
        let mut ctx = CpuBackend::<f32>::new(true, true);
        let t = Instant::now();
        let (y, saved) = ctx.conv2d(&x, &w, None, cfg).expect("conv2d");
        fwd = fwd.min(t.elapsed().as_secs_f64());
        let g = y.values().to_vec();
        let t = Instant::now();
        let mut dx = None;
        ctx.conv2d_backward(saved, &w, None, cfg, g.clone(), Some(&mut dx))
            .expect("conv2d backward");
        both = both.min(t.elapsed().as_secs_f64());
        let (_, saved) = ctx.conv2d(&x, &w, None, cfg).expect("conv2d");
        let t = Instant::now();
        ctx.conv2d_backward(saved, &w, None, cfg, g, None)
            .expect("conv2d backward");
        wgrad = wgrad.min(t.elapsed().as_secs_f64());
    }
    let xgrad = both - wgrad;
    let show = |s: f64| format!("{:.2} ms {:.0} GFLOP/s", s * 1e3, flops / s / 1e9);
    println!(
        "{n}×{cin}×{hw}×{hw} → {cout} ({k}×{k}): forward {} | weight gradient {} | input gradient {} (backward minus weight gradient)",
        show(fwd),
        show(wgrad),
        show(xgrad)
    );
}

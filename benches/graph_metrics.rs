//! The cost of a study row's graph metrics (issue 26: "no more than 1 % of a study's time"):
//! for every network of a built-in grid, the time to build its DAG and compute every block's
//! metrics (`study::graph_metrics`), the median of 5 repeats. A row costs this once, beside a
//! run of minutes. Usage: `cargo bench --bench graph_metrics -- [quick|paper-cifar]` (one line
//! per network, then the total).

use sparsenet::cli::grid::{preset, Preset};
use sparsenet::study::graph_metrics::graph_metrics;
use std::time::Instant;

fn main() {
    let which = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .unwrap_or_else(|| "quick".into());
    let grid = match which.as_str() {
        "quick" => preset(Preset::Quick),
        "paper-cifar" => preset(Preset::PaperCifar),
        other => {
            eprintln!("usage: graph_metrics [quick|paper-cifar], not {other}");
            std::process::exit(2);
        }
    };
    let mut total = 0.0;
    for e in &grid {
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let net = sparsenet_net::zoo::build(&e.spec).expect("a preset network builds");
                let m = graph_metrics(&net).expect("a preset network has blocks");
                std::hint::black_box(m);
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        total += times[2];
        println!("{:<40} {:>9.3} ms", e.name, times[2] * 1e3);
    }
    println!("total {} networks: {:.3} ms", grid.len(), total * 1e3);
}

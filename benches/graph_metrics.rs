//! The cost of a study row's graph metrics (issue 26: "no more than 1 % of a study's time"):
//! for every network of a built-in grid, the time to build its DAG and compute every block's
//! metrics (`study::graph_metrics`), the median of 5 repeats. A row costs this once, beside a
//! run of minutes. Usage: `cargo bench --bench graph_metrics -- [quick|paper-cifar]` (one line
//! per network, then the total), or `-- draw` (the time `sparsenet study search` spends drawing and
//! filtering 24 candidates of each space at 77 000 parameters, the analysis included).

use sparsenet::study::graph_metrics::graph_metrics;
use sparsenet::study::grid::{preset, Preset};
use std::time::Instant;

fn main() {
    let which = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .unwrap_or_else(|| "quick".into());
    if which == "draw" {
        use sparsenet::study::search::{draw, Draw, Space};
        for space in [Space::Offsets, Space::Dag, Space::Aggregate] {
            let d = Draw {
                space,
                budget: 77_000,
                tolerance: 0.1,
                candidates: 24,
                seed: 0,
                depth: 22,
                nodes: (4, 12),
                max_gradient_path: None,
            };
            let t = Instant::now();
            let (c, stats) = draw(&d, sparsenet_net::Shape::new(1, 28, 28), 10).expect("a draw");
            println!(
                "draw {space}: {} networks from {} proposals in {:.3} s ({stats:?})",
                c.len(),
                stats.proposed,
                t.elapsed().as_secs_f64()
            );
        }
        return;
    }
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

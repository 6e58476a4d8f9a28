use sparsenet_analysis::*;
use std::time::Instant;
fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    for p in [Pattern::Plain, Pattern::Dense, Pattern::Sparse { base: 2 }] {
        let t = Topology::new(p, n).unwrap();
        let s = Instant::now();
        let _ = paths::path_count(&t.offsets(), n);
        let a = s.elapsed();
        let _ = paths::path_length_histogram(&t.offsets(), n);
        let b = s.elapsed();
        let _ = distance::gradient_stats(&t.offsets(), n);
        let c = s.elapsed();
        println!(
            "{} count {:?} hist {:?} grad {:?}",
            t.pattern,
            a,
            b - a,
            c - b
        );
    }
    let s = Instant::now();
    let _ = bijection::check_bijection(16);
    println!("bij {:?}", s.elapsed());
}

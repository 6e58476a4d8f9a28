//! Images/s of the class-folder loader: decode, `RandomResizedCrop(224)` + flip + normalise, and
//! batch, through the trainer's own loader thread and decoding pool, for one pass over a folder.
//! Usage: `cargo bench --bench folder_loader -- DIR WORKERS BATCH [BATCHES]` (prints one `impl`
//! line; `benches/loader_vs_torchvision.sh` runs it beside torchvision's ImageFolder).

use sparsenet::data::folder::FolderOptions;
use sparsenet::data::transform::Preset;
use sparsenet::data::{load_folder, spawn_loader, BatchPlan};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [dir, workers, batch, rest @ ..] = args.as_slice() else {
        eprintln!("usage: folder_loader DIR WORKERS BATCH [BATCHES]");
        std::process::exit(2);
    };
    let workers: usize = workers.parse().expect("workers");
    let batch: usize = batch.parse().expect("batch");
    let opts = FolderOptions {
        workers,
        ..FolderOptions::default_for(Preset::Imagenet)
    };
    let scan = Instant::now();
    let split = load_folder(std::path::Path::new(dir), &opts, &mut |w| eprintln!("{w}"))
        .expect("a class folder");
    let scanned = scan.elapsed().as_secs_f64();
    let n = split.train.n();
    let batches = rest
        .first()
        .map_or(n.div_ceil(batch), |b| b.parse().expect("batches"));
    let plan = BatchPlan {
        batch_size: batch,
        shuffle_seed: Some(1),
        crop_pad: 0,
        flip: true,
        mean: opts.transforms.mean.clone().expect("imagenet mean"),
        std: opts.transforms.std.clone().expect("imagenet std"),
        augment: true,
    };
    let train = Arc::new(split.train);
    let start = Instant::now();
    let mut images = 0;
    for b in spawn_loader(train, plan, Some(batches)) {
        images += b.expect("a batch").y.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "impl sparsenet workers {workers} batch {batch}: {images} images in {secs:.2} s = {:.1} images/s ({:.1} per worker; header scan of {n} files {scanned:.2} s)",
        images as f64 / secs,
        images as f64 / secs / workers as f64
    );
}

//! Experiments on trained networks (`study`): parameter efficiency over a grid of networks
//! ([`efficiency`]), connection usage of a trained concatenating network ([`weights`]), and
//! test-time lesions ([`lesion`]); the graph metrics set beside each trained network
//! ([`graph_metrics`]). The command-line front end is `cli::study`; everything here
//! writes to a folder and returns what it wrote, so notebooks and tests drive it too: each
//! study's report is in its own module (`weights::report`, `lesion::run` and `lesion::report`,
//! `efficiency::run`).

pub mod correlate;
pub mod efficiency;
pub mod graph_metrics;
pub mod grid;
pub mod lesion;
pub mod prune;
pub mod search;
pub mod stats;
pub mod weights;

use crate::train::checkpoint;

/// The name a checkpoint's network is shown under.
pub(crate) fn network_name(meta: &checkpoint::Meta) -> String {
    let s = meta.spec.to_string();
    match s.find(" (") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

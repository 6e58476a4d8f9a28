//! Every integration test, in one binary (as ripgrep's `tests/tests.rs`): one link step, and
//! one set of helpers (`common`) for scratch folders, the embedded data and running the
//! binaries. Run one module with `cargo test --test tests <module>::`.

mod baseline;
mod common;

mod dag_cli;
mod dist_cli;
mod exit_codes;
mod export_cli;
mod folder_data;
mod full_disk;
mod gpu_launches;
mod hostile_files;
mod hostile_study_files;
mod hostile_sweep;
mod injection;
mod kill_resume;
mod layers;
mod memory_estimate;
mod one_program;
mod paths_cli;
mod prune_cli;
mod run_folders;
mod study_cli;
mod study_shards;
mod torch_parity;
mod train_cli;
mod zoo_cli;

//! Writes the GPU kernels' typed launch declarations from `src/gpu/kernels.cu` (only in a
//! build with the `cuda` feature), so that each kernel's parameter list is written once.

mod kernel_decls {
    include!("build/kernel_decls.rs");
}

fn main() {
    println!("cargo:rerun-if-changed=src/gpu/kernels.cu");
    println!("cargo:rerun-if-changed=build/kernel_decls.rs");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let cu = std::fs::read_to_string("src/gpu/kernels.cu").expect("src/gpu/kernels.cu");
    let decls = kernel_decls::declarations(&cu).unwrap_or_else(|e| panic!("kernels.cu: {e}"));
    let out =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("kernel_decls.rs");
    std::fs::write(&out, decls).expect("the kernel declarations are written");
}

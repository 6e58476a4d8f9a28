//! The CUDA libraries the GPU path loads at run time (cudarc's `dynamic-loading`): the driver,
//! NVRTC, cuBLAS, cuDNN and NCCL. cudarc panics on the first call into a library it cannot find;
//! every entry point checks here first and stops with one line that names the library, the file
//! names searched and, where a file under another name is on the library path (NCCL's
//! `libnccl.so.2` is not among cudarc's names), the link that makes it found.

use anyhow::{bail, Result};

/// One of the libraries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lib {
    /// The NVIDIA driver's `libcuda`.
    Driver,
    /// NVRTC, which compiles our kernels at start-up.
    Nvrtc,
    /// cuBLAS, for the products.
    Cublas,
    /// cuDNN 9, for the convolutions (`--conv cudnn`).
    Cudnn,
    /// NCCL, for training on several GPUs.
    Nccl,
}

impl Lib {
    /// Every library, in load order.
    pub const ALL: [Lib; 5] = [Lib::Driver, Lib::Nvrtc, Lib::Cublas, Lib::Cudnn, Lib::Nccl];

    /// The stem cudarc searches for (`lib<stem>.so…`).
    pub fn stem(self) -> &'static str {
        match self {
            Lib::Driver => "cuda",
            Lib::Nvrtc => "nvrtc",
            Lib::Cublas => "cublas",
            Lib::Cudnn => "cudnn",
            Lib::Nccl => "nccl",
        }
    }

    /// Where it usually comes from.
    pub fn source(self) -> &'static str {
        match self {
            Lib::Driver => "the NVIDIA driver",
            Lib::Nvrtc => "the CUDA toolkit or the PyPI wheel nvidia-cuda-nvrtc",
            Lib::Cublas => "the CUDA toolkit or the PyPI wheel nvidia-cublas",
            Lib::Cudnn => "cuDNN 9 or the PyPI wheel nvidia-cudnn-cu13",
            Lib::Nccl => "NCCL or the PyPI wheel nvidia-nccl-cu13",
        }
    }

    /// Whether cudarc finds it.
    pub fn present(self) -> bool {
        // SAFETY: each `is_culib_present` only tries to dlopen the library's candidate names
        // (running their initialisers, as any use of the library would) and closes them again.
        unsafe {
            match self {
                Lib::Driver => cudarc::driver::sys::is_culib_present(),
                Lib::Nvrtc => cudarc::nvrtc::sys::is_culib_present(),
                Lib::Cublas => cudarc::cublas::sys::is_culib_present(),
                Lib::Cudnn => cudarc::cudnn::sys::is_culib_present(),
                Lib::Nccl => cudarc::nccl::sys::is_culib_present(),
            }
        }
    }

    /// The file names cudarc tries, in order (each once).
    pub fn candidates(self) -> Vec<String> {
        let mut names = cudarc::get_lib_name_candidates(self.stem());
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }
}

/// A file named `lib<stem>.so.<version>` in a directory of `LD_LIBRARY_PATH` that cudarc would
/// not try (e.g. `libnccl.so.2`), if there is one.
pub fn found_under_other_name(lib: Lib) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("LD_LIBRARY_PATH")?;
    found_in(lib, std::env::split_paths(&path))
}

/// [`found_under_other_name`] over the given directories.
pub fn found_in(
    lib: Lib,
    dirs: impl IntoIterator<Item = std::path::PathBuf>,
) -> Option<std::path::PathBuf> {
    let tried = lib.candidates();
    let prefix = format!("lib{}.so.", lib.stem());
    dirs.into_iter().find_map(|dir| {
        let entries = std::fs::read_dir(&dir).ok()?;
        entries.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with(&prefix) && !tried.contains(&name)).then(|| e.path())
        })
    })
}

/// The one-line reason `lib` cannot be loaded, or `None` when it can.
pub fn missing(lib: Lib) -> Option<String> {
    if lib.present() {
        return None;
    }
    let mut line = format!(
        "the CUDA library lib{}.so ({}) was not found on the library path (searched: {}); \
         add its directory to LD_LIBRARY_PATH",
        lib.stem(),
        lib.source(),
        lib.candidates().join(", ")
    );
    if let Some(other) = found_under_other_name(lib) {
        line.push_str(&format!(
            "; {} is there under a name cudarc does not try: link it as lib{}.so in the same \
             directory (scripts/gpu-libs.sh does this)",
            other.display(),
            lib.stem()
        ));
    }
    Some(line)
}

/// Stop with one line for the first of `libs` that cannot be loaded.
pub fn require(libs: &[Lib]) -> Result<()> {
    for &lib in libs {
        if let Some(why) = missing(lib) {
            bail!("{why}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_cover_the_cuda_13_and_cudnn_9_names() {
        // The pitfall of the issue: the versioned names must be among those tried.
        assert!(Lib::Cudnn
            .candidates()
            .contains(&"libcudnn.so.9".to_string()));
        assert!(Lib::Cublas
            .candidates()
            .contains(&"libcublas.so.13".to_string()));
        assert!(Lib::Driver
            .candidates()
            .contains(&"libcuda.so.1".to_string()));
        // …and NCCL's soname is not, which `found_under_other_name` reports.
        assert!(!Lib::Nccl.candidates().contains(&"libnccl.so.2".to_string()));
    }

    #[test]
    fn nccls_soname_is_found_under_its_other_name() {
        let dir = std::env::temp_dir().join(format!("sparsenet-libs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(found_in(Lib::Nccl, [dir.clone()]), None);
        std::fs::write(dir.join("libnccl.so.2"), b"").unwrap();
        assert_eq!(
            found_in(Lib::Nccl, [dir.clone()]),
            Some(dir.join("libnccl.so.2"))
        );
        // A name cudarc tries is not reported as another name.
        std::fs::remove_file(dir.join("libnccl.so.2")).unwrap();
        std::fs::write(dir.join("libnccl.so.13"), b"").unwrap();
        assert_eq!(found_in(Lib::Nccl, [dir.clone()]), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_library_is_one_line_naming_it() {
        // No machine of this project's CI has the NVIDIA driver; where one does, there is
        // nothing to report and the line is absent.
        match missing(Lib::Driver) {
            Some(line) => {
                assert!(!line.contains('\n'));
                assert!(line.contains("libcuda.so"), "{line}");
                assert!(line.contains("LD_LIBRARY_PATH"), "{line}");
            }
            None => assert!(Lib::Driver.present()),
        }
    }
}

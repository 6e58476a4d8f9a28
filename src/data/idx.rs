//! The IDX format of MNIST and Fashion-MNIST (big-endian header; gzipped or raw).

use anyhow::{bail, Context, Result};
use std::io::Read;

use super::Dataset;

/// The most pixel bytes an IDX image file may hold (2 GiB: several times the largest
/// MNIST-style set). A header claiming more is rejected before anything is allocated.
pub const MAX_IDX_BYTES: usize = 1 << 31;

/// Bytes read per step while decompressing: memory grows with the data actually present,
/// never with what a header claims.
const CHUNK: usize = 1 << 20;

/// The contents of an IDX file, raw or gzipped: its header (`header_len` bytes, read first)
/// and then exactly the body the header announces (`body_len` computes it, or fails), checked
/// against the file's real length. A gzip stream is inflated only up to that length plus one
/// byte, so a gzip bomb or a lying header costs at most what the checked header allows.
fn read_idx(
    bytes: &[u8],
    what: &str,
    header_len: usize,
    body_len: impl Fn(&[u8]) -> Result<usize>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut reader: Box<dyn Read + '_> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut header = vec![0u8; header_len];
    let mut got = 0;
    while got < header_len {
        match reader.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) => bail!("{what}: corrupt gzip data ({e})"),
        }
    }
    header.truncate(got);
    let body = body_len(&header)?;
    let mut data = Vec::with_capacity(body.min(CHUNK));
    reader
        .take(body as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| anyhow::anyhow!("{what}: corrupt gzip data ({e})"))?;
    if data.len() != body {
        bail!(
            "{what}: the header announces {body} bytes after it but the file has {}{} (truncated or padded?)",
            if data.len() > body { "more than " } else { "" },
            data.len().min(body)
        );
    }
    Ok((header, data))
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Parse an image file (magic 0x00000803: count, rows, cols) and a label file (0x00000801),
/// each raw or gzipped; `images_what` and `labels_what` name them in errors.
pub fn pair(
    images: &[u8],
    images_what: &str,
    labels: &[u8],
    labels_what: &str,
    classes: usize,
) -> Result<Dataset> {
    let (head, img) = read_idx(images, images_what, 16, |h| {
        if h.len() < 16 || be32(h, 0) != 0x0803 {
            bail!("{images_what}: not an IDX image file (expected magic 0x00000803, a 16-byte header)");
        }
        let (n, rows, cols) = (be32(h, 4), be32(h, 8), be32(h, 12));
        n.checked_mul(rows)
            .and_then(|v| v.checked_mul(cols))
            .filter(|&v| v <= MAX_IDX_BYTES)
            .with_context(|| {
                format!("{images_what}: header claims {n} images of {rows}×{cols}, more than the {MAX_IDX_BYTES} bytes accepted")
            })
    })?;
    let (n, h, w) = (be32(&head, 4), be32(&head, 8), be32(&head, 12));
    let (lhead, lab) = read_idx(labels, labels_what, 8, |h| {
        if h.len() < 8 || be32(h, 0) != 0x0801 {
            bail!("{labels_what}: not an IDX label file (expected magic 0x00000801, an 8-byte header)");
        }
        Ok(be32(h, 4))
    })?;
    let nl = be32(&lhead, 4);
    if nl != n {
        bail!("{images_what}: {n} images but {labels_what} has {nl} labels");
    }
    let d = Dataset {
        images: img,
        labels: lab,
        n,
        c: 1,
        h,
        w,
        classes,
    };
    d.validate(labels_what)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_file(n: u32, h: u32, w: u32, bytes: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [0x0803u32, n, h, w] {
            v.extend(x.to_be_bytes());
        }
        v.extend(std::iter::repeat_n(7u8, bytes));
        v
    }

    fn label_file(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(0x0801u32.to_be_bytes());
        v.extend((labels.len() as u32).to_be_bytes());
        v.extend(labels);
        v
    }

    #[test]
    fn parses_and_rejects_bad_files() {
        let d = pair(&image_file(2, 2, 3, 12), "t", &label_file(&[1, 9]), "l", 10).unwrap();
        assert_eq!((d.n, d.h, d.w, d.labels.clone()), (2, 2, 3, vec![1, 9]));
        let e = |r: Result<Dataset>| r.unwrap_err().to_string();
        assert!(e(pair(
            &image_file(2, 2, 3, 11),
            "t",
            &label_file(&[1, 9]),
            "l",
            10
        ))
        .contains("truncated"));
        assert!(e(pair(&label_file(&[1]), "t", &label_file(&[1, 9]), "l", 10)).contains("magic"));
        assert!(e(pair(
            &image_file(2, 2, 3, 12),
            "t",
            &label_file(&[1]),
            "l",
            10
        ))
        .contains("2 images but l has 1 labels"));
        assert!(e(pair(
            &image_file(2, 2, 3, 12),
            "t",
            &label_file(&[1, 12]),
            "l",
            10
        ))
        .contains("out of range"));
        assert!(e(pair(&[0x1f, 0x8b, 0, 1], "t", &label_file(&[1]), "l", 10)).contains("gzip"));
        // A header claiming 2³¹ × 2³¹ images fails on the header alone (no allocation).
        let huge = image_file(u32::MAX, 1 << 31, 1 << 31, 0);
        assert!(e(pair(&huge, "t", &label_file(&[1]), "l", 10)).contains("more than"));
    }
}

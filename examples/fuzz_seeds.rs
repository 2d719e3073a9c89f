//! Writes the fuzz targets' seed corpora (`fuzz/corpus/<target>/`) from the catalogue of every
//! message kind: `cargo run --example fuzz_seeds`. The files are checked in and replayed as tests
//! by `fc-frames/tests/fuzz_corpus.rs`.

use std::fs;
use std::path::Path;

use fc_frames::{FcType, RCtl};
use fc_pcap::catalogue;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut n = 0;
    for (i, f) in catalogue::conversation().iter().enumerate() {
        let mut write = |target: &str, bytes: &[u8]| -> std::io::Result<()> {
            let dir = root.join(target);
            fs::create_dir_all(&dir)?;
            n += 1;
            fs::write(dir.join(format!("catalogue-{:03}", i + 1)), bytes)
        };
        write("frame", &f.to_delimited_vec())?;
        let p = &f.payload[..];
        match (f.header.fc_type, f.header.r_ctl) {
            (FcType::ELS, _) | (FcType::BLS, _) => write("els", p)?,
            (FcType::CT, _) => write("ct", p)?,
            (FcType::FCP, RCtl::UNSOLICITED_COMMAND) => {
                write("fcp", p)?;
                // The CDB sits at bytes 12..28 of FCP_CMND.
                if let Some(cdb) = p.get(12..28) {
                    write("cdb", cdb)?;
                }
            }
            (FcType::FCP, _) => write("fcp", p)?,
            _ => {}
        }
    }
    println!("wrote {n} seeds under {}", root.display());
    Ok(())
}

//! `disk.toml`: a disk array node, its LUNs backed by files, and its tape LUNs.
//!
//! ```toml
//! [node]                        # as in host.toml
//! switch = "127.0.0.1:7001"
//! port_name = "22:00:00:00:00:00:00:01"
//! node_name = "20:00:00:00:00:00:00:01"
//!
//! [[lun]]
//! lun = 0                       # 0..=255, unique among all LUNs
//! path = "ssd0.img"             # relative to the file's folder
//! size = "1GiB"                 # bytes, or with B, KiB..TiB, KB..TB; whole blocks
//! block_size = 512              # optional: 512 (default), 1024, 2048 or 4096
//! tier = "ssd"                  # ssd, fast-hdd or slow-hdd
//! serial = "SSD0"               # optional; default from the port name and LUN
//!
//! [[tape]]                      # optional, any number
//! lun = 3
//! serial = "TAPE0"              # optional
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fc_frames::scsi::Lun;
use fc_frames::Wwn;
use fc_node::scsi::Tier;
use serde::Deserialize;
use toml::Spanned;

use super::node::{NodeSection, RawNode};
use super::source::{self, Source};
use super::ConfigFileError;

/// The block sizes a LUN may have.
const BLOCK_SIZES: [u32; 4] = [512, 1024, 2048, 4096];
/// The block size when none is given.
const DEFAULT_BLOCK_SIZE: u32 = 512;
/// What a size string may end with, and the factor.
const UNITS: [(&str, u64); 11] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("", 1),
];

/// `disk.toml`: what the disk array role runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFile {
    /// The node's switch, names and time-outs.
    pub node: NodeSection,
    /// The disk LUNs, in file order.
    pub luns: Vec<LunSpec>,
    /// The tape LUNs, in file order.
    pub tapes: Vec<TapeSpec>,
}

// The LUN specs are the disk array's own (fc_node::disk): the file resolves paths against
// its folder and checks sizes, block sizes, tiers and serials before they get there.
pub use fc_node::disk::{LunSpec, TapeSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a disk.toml document")]
struct RawDisk {
    node: RawNode,
    #[serde(default)]
    lun: Vec<RawLun>,
    #[serde(default)]
    tape: Vec<RawTape>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[lun]] table")]
struct RawLun {
    lun: Spanned<i64>,
    path: Spanned<String>,
    size: Spanned<toml::Value>,
    block_size: Option<Spanned<i64>>,
    tier: Spanned<String>,
    serial: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[tape]] table")]
struct RawTape {
    lun: Spanned<i64>,
    serial: Option<Spanned<String>>,
}

/// Loads `disk.toml` from `path`; LUN paths in it are taken from its folder.
pub fn load_disk(path: &Path) -> Result<DiskFile, ConfigFileError> {
    let (file, text, base) = source::read(path)?;
    parse_disk(&text, &file, &base)
}

/// Parses the text of a `disk.toml`, called `file_name` in errors; LUN paths in it are taken
/// from `base_dir`.
pub fn parse_disk(
    text: &str,
    file_name: &str,
    base_dir: &Path,
) -> Result<DiskFile, ConfigFileError> {
    let src = Source::new(file_name, text);
    let raw: RawDisk = src.deserialize()?;
    let node = raw.node.check(&src, "node")?;
    if raw.lun.is_empty() && raw.tape.is_empty() {
        return Err(src.error(
            text.len()..text.len(),
            "lun",
            "no [[lun]] and no [[tape]]: a disk array needs at least one LUN",
        ));
    }

    let mut unique = Unique::default();
    let mut luns = Vec::with_capacity(raw.lun.len());
    for (i, l) in raw.lun.iter().enumerate() {
        let key = format!("lun[{i}]");
        let lun = unique.lun(&src, &l.lun, &key)?;
        let path = source::path(&src, &l.path, &format!("{key}.path"), base_dir)?;
        if let Some((other, line)) = unique.paths.get(&path) {
            return Err(src.error(
                l.path.span(),
                format!("{key}.path"),
                format!(
                    "{} is already the file of {other} at line {line}",
                    path.display()
                ),
            ));
        }
        unique
            .paths
            .insert(path.clone(), (key.clone(), src.line(l.path.span().start)));
        let block_size = match &l.block_size {
            None => DEFAULT_BLOCK_SIZE,
            Some(b) => u32::try_from(*b.get_ref())
                .ok()
                .filter(|n| BLOCK_SIZES.contains(n))
                .ok_or_else(|| {
                    src.error(
                        b.span(),
                        format!("{key}.block_size"),
                        format!(
                            "block size {} is not one of 512, 1024, 2048 or 4096",
                            b.get_ref()
                        ),
                    )
                })?,
        };
        let bytes = size(&src, &l.size, &format!("{key}.size"), block_size)?;
        let tier = match l.tier.get_ref().as_str() {
            "ssd" => Tier::Ssd,
            "fast-hdd" => Tier::FastHdd,
            "slow-hdd" => Tier::SlowHdd,
            other => {
                return Err(src.error(
                    l.tier.span(),
                    format!("{key}.tier"),
                    format!("unknown tier {other:?} (expected ssd, fast-hdd or slow-hdd)"),
                ))
            }
        };
        let serial = unique.serial(&src, l.serial.as_ref(), &key, node.port_name, &l.lun)?;
        luns.push(LunSpec {
            lun,
            path,
            bytes,
            block_size,
            tier,
            serial,
        });
    }

    let mut tapes = Vec::with_capacity(raw.tape.len());
    for (i, t) in raw.tape.iter().enumerate() {
        let key = format!("tape[{i}]");
        let lun = unique.lun(&src, &t.lun, &key)?;
        let serial = unique.serial(&src, t.serial.as_ref(), &key, node.port_name, &t.lun)?;
        tapes.push(TapeSpec { lun, serial });
    }

    Ok(DiskFile { node, luns, tapes })
}

/// What must be unique among the LUNs of one file, with the key and line that took it.
#[derive(Default)]
struct Unique {
    luns: BTreeMap<u8, (String, usize)>,
    paths: BTreeMap<PathBuf, (String, usize)>,
    serials: BTreeMap<String, (String, usize)>,
}

impl Unique {
    /// The LUN of `[[lun]]`/`[[tape]]` `key`, checked in range and unused.
    fn lun(
        &mut self,
        src: &Source<'_>,
        v: &Spanned<i64>,
        key: &str,
    ) -> Result<Lun, ConfigFileError> {
        let lun_key = format!("{key}.lun");
        let n: u8 = source::in_range(src, v, &lun_key, 0..256, "LUN")?;
        if let Some((other, line)) = self.luns.get(&n) {
            return Err(src.error(
                v.span(),
                lun_key,
                format!("LUN {n} is already used by {other} at line {line}"),
            ));
        }
        self.luns
            .insert(n, (key.to_owned(), src.line(v.span().start)));
        // Every number below 256 has a peripheral-device address, so the fallback is unused.
        Ok(Lun::from_index(n.into()).unwrap_or(Lun::ZERO))
    }

    /// The serial given for `key`, or one made from the port name and the LUN; checked
    /// printable ASCII (SPC-4 VPD page 0x80) and unused.
    fn serial(
        &mut self,
        src: &Source<'_>,
        given: Option<&Spanned<String>>,
        key: &str,
        port_name: Wwn,
        lun: &Spanned<i64>,
    ) -> Result<String, ConfigFileError> {
        let serial_key = format!("{key}.serial");
        let (serial, span) = match given {
            Some(s) => (s.get_ref().clone(), s.span()),
            // 16 hex digits, L and three decimal ones: 20 characters, unique on the fabric.
            None => (
                format!("{:016X}L{:03}", port_name.to_u64(), lun.get_ref()),
                lun.span(),
            ),
        };
        if serial.is_empty() || !serial.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
            return Err(src.error(
                span,
                serial_key,
                format!("serial {serial:?} is not printable ASCII (or is empty)"),
            ));
        }
        if let Some((other, line)) = self.serials.get(&serial) {
            return Err(src.error(
                span,
                serial_key,
                format!("serial {serial:?} is already used by {other} at line {line}"),
            ));
        }
        self.serials
            .insert(serial.clone(), (key.to_owned(), src.line(span.start)));
        Ok(serial)
    }
}

/// A size in bytes: an integer, or a string of digits and a unit; positive and a multiple of
/// `block_size`.
pub(super) fn size(
    src: &Source<'_>,
    v: &Spanned<toml::Value>,
    key: &str,
    block_size: u32,
) -> Result<u64, ConfigFileError> {
    let err = |message: String| src.error(v.span(), key, message);
    let bytes = match v.get_ref() {
        toml::Value::Integer(n) => {
            u64::try_from(*n).map_err(|_| err(format!("size {n} is negative")))?
        }
        toml::Value::String(s) => size_text(s).ok_or_else(|| {
            err(format!(
                "bad size {s:?} (expected whole bytes, or a whole number with B, KiB, MiB, \
                 GiB, TiB, KB, MB, GB or TB, such as \"256MiB\")"
            ))
        })?,
        other => {
            return Err(err(format!(
                "a size is an integer number of bytes or a string such as \"256MiB\", not a {}",
                other.type_str()
            )))
        }
    };
    if bytes == 0 {
        return Err(err("size 0: a LUN needs at least one block".to_owned()));
    }
    if bytes % u64::from(block_size) != 0 {
        return Err(err(format!(
            "size {bytes} bytes is not a multiple of the block size {block_size}"
        )));
    }
    Ok(bytes)
}

/// `256MiB`, `1 GB`, `4096` or `4096B` in bytes; `None` when malformed or above `u64::MAX`.
pub(super) fn size_text(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let (_, factor) = UNITS.iter().find(|(u, _)| *u == unit.trim_start())?;
    number.checked_mul(*factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISK: &str = "\
[node]
switch = \"127.0.0.1:7001\"
port_name = \"22:00:00:00:00:00:00:01\"
node_name = \"20:00:00:00:00:00:00:01\"

[[lun]]
lun = 0
path = \"ssd0.img\"
size = \"1GiB\"
tier = \"ssd\"
serial = \"SSD0\"

[[lun]]
lun = 1
path = \"/srv/hdd1.img\"
size = 1048576
block_size = 4096
tier = \"slow-hdd\"

[[tape]]
lun = 3
";

    fn err(text: &str) -> String {
        parse_disk(text, "disk.toml", Path::new("/etc/fcsan"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn test_parse_disk() {
        let d = parse_disk(DISK, "disk.toml", Path::new("/etc/fcsan")).unwrap();
        assert_eq!(d.node.port_name, Wwn::from_u64(0x2200_0000_0000_0001));
        assert_eq!(d.luns.len(), 2);
        let l0 = &d.luns[0];
        assert_eq!(l0.lun, Lun::ZERO);
        assert_eq!(l0.path, PathBuf::from("/etc/fcsan/ssd0.img"));
        assert_eq!(
            (l0.bytes, l0.block_size, l0.bytes / u64::from(l0.block_size)),
            (1 << 30, 512, 1 << 21)
        );
        assert_eq!((l0.tier, l0.serial.as_str()), (Tier::Ssd, "SSD0"));
        let l1 = &d.luns[1];
        assert_eq!(l1.lun, Lun::from_index(1).unwrap());
        assert_eq!(l1.path, PathBuf::from("/srv/hdd1.img"));
        assert_eq!(
            (l1.bytes, l1.block_size, l1.bytes / u64::from(l1.block_size)),
            (1 << 20, 4096, 256)
        );
        assert_eq!(l1.tier, Tier::SlowHdd);
        assert_eq!(l1.serial, "2200000000000001L001");
        assert_eq!(
            d.tapes,
            vec![TapeSpec {
                lun: Lun::from_index(3).unwrap(),
                serial: "2200000000000001L003".into(),
            }]
        );
    }

    #[test]
    fn test_size_text() {
        assert_eq!(size_text("4096"), Some(4096));
        assert_eq!(size_text("4096B"), Some(4096));
        assert_eq!(size_text("2 KiB"), Some(2048));
        assert_eq!(size_text("256MiB"), Some(256 << 20));
        assert_eq!(size_text("3GiB"), Some(3 << 30));
        assert_eq!(size_text("1TiB"), Some(1 << 40));
        assert_eq!(size_text("8kB"), Some(8_000));
        assert_eq!(size_text("8KB"), Some(8_000));
        assert_eq!(size_text("5MB"), Some(5_000_000));
        assert_eq!(size_text("2GB"), Some(2_000_000_000));
        assert_eq!(size_text("1TB"), Some(1_000_000_000_000));
        for bad in ["", "GiB", "1.5GiB", "12XB", "-1", "1 gib", "99999999999TiB"] {
            assert_eq!(size_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn test_unknown_tier() {
        assert_eq!(
            err(&DISK.replace("\"ssd\"", "\"ssdd\"")),
            "disk.toml:10: key lun[0].tier: unknown tier \"ssdd\" \
             (expected ssd, fast-hdd or slow-hdd)"
        );
    }

    #[test]
    fn test_size_not_multiple_of_block_size() {
        assert_eq!(
            err(&DISK.replace("size = 1048576", "size = \"1MB\"")),
            "disk.toml:16: key lun[1].size: size 1000000 bytes is not a multiple of the \
             block size 4096"
        );
        assert_eq!(
            err(&DISK.replace("size = 1048576", "size = 0")),
            "disk.toml:16: key lun[1].size: size 0: a LUN needs at least one block"
        );
    }

    #[test]
    fn test_bad_size_string() {
        assert_eq!(
            err(&DISK.replace("\"1GiB\"", "\"1.5GiB\"")),
            "disk.toml:9: key lun[0].size: bad size \"1.5GiB\" (expected whole bytes, or a \
             whole number with B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, such as \"256MiB\")"
        );
        assert_eq!(
            err(&DISK.replace("\"1GiB\"", "1.5")),
            "disk.toml:9: key lun[0].size: a size is an integer number of bytes or a string \
             such as \"256MiB\", not a float"
        );
        assert_eq!(
            err(&DISK.replace("size = 1048576", "size = -4096")),
            "disk.toml:16: key lun[1].size: size -4096 is negative"
        );
    }

    #[test]
    fn test_bad_block_size() {
        assert_eq!(
            err(&DISK.replace("block_size = 4096", "block_size = 520")),
            "disk.toml:17: key lun[1].block_size: block size 520 is not one of 512, 1024, \
             2048 or 4096"
        );
    }

    #[test]
    fn test_duplicate_lun() {
        assert_eq!(
            err(&DISK.replace("lun = 1\n", "lun = 0\n")),
            "disk.toml:14: key lun[1].lun: LUN 0 is already used by lun[0] at line 7"
        );
        assert_eq!(
            err(&DISK.replace("lun = 3\n", "lun = 1\n")),
            "disk.toml:21: key tape[0].lun: LUN 1 is already used by lun[1] at line 14"
        );
    }

    #[test]
    fn test_bad_lun_number() {
        assert_eq!(
            err(&DISK.replace("lun = 3\n", "lun = 256\n")),
            "disk.toml:21: key tape[0].lun: LUN 256 is outside 0..=255"
        );
    }

    #[test]
    fn test_duplicate_path_and_serial() {
        assert_eq!(
            err(&DISK.replace("/srv/hdd1.img", "ssd0.img")),
            "disk.toml:15: key lun[1].path: /etc/fcsan/ssd0.img is already the file of \
             lun[0] at line 8"
        );
        assert_eq!(
            err(&DISK.replace("lun = 3\n", "lun = 3\nserial = \"SSD0\"\n")),
            "disk.toml:22: key tape[0].serial: serial \"SSD0\" is already used by lun[0] at \
             line 11"
        );
        assert_eq!(
            err(&DISK.replace("\"SSD0\"", "\"\"")),
            "disk.toml:11: key lun[0].serial: serial \"\" is not printable ASCII (or is empty)"
        );
    }

    #[test]
    fn test_no_lun() {
        let text = DISK.split("[[lun]]").next().unwrap_or_default();
        assert_eq!(
            err(text),
            "disk.toml:6: key lun: no [[lun]] and no [[tape]]: a disk array needs at least \
             one LUN"
        );
    }

    #[test]
    fn test_unknown_lun_key() {
        assert_eq!(
            err(&DISK.replace("tier = \"slow-hdd\"", "tier = \"slow-hdd\"\nteir = 1")),
            "disk.toml:19: key lun[1].teir: unknown field `teir`, expected one of `lun`, \
             `path`, `size`, `block_size`, `tier`, `serial`"
        );
    }

    #[test]
    fn test_missing_lun_key() {
        assert_eq!(
            err(&DISK.replace("path = \"ssd0.img\"\n", "")),
            "disk.toml:6: key lun[0].path: missing field `path`"
        );
    }

    #[test]
    fn test_syntax_error() {
        assert_eq!(
            err(&DISK.replace("size = 1048576", "size = 1048576 MiB")),
            "disk.toml:16: key lun[1].size: string values must be quoted, expected literal string"
        );
        assert_eq!(
            err(&DISK.replace("tier = \"ssd\"", "tier = \"ssd")),
            "disk.toml:10: key lun[0].tier: invalid basic string, expected `\"`"
        );
    }
}

//! The progress bar of a long transfer, on standard error.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `len` bytes labelled `verb`; hidden when `show` is false.
pub fn bar(len: u64, show: bool, verb: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(verb.to_string());
    bar
}

//! Errors shared by every decoder in this crate.
//!
//! Each layer has its own error enum (in its own module) that wraps a [`LenError`] for "too short"
//! and adds content errors that say which field was wrong. [`Layer`] names where a length error
//! happened so that a message such as "ELS PLOGI: need 116 bytes, got 20" points at the culprit.

use core::fmt;

/// The structure a decoder was reading when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// FC-2 frame header (FC-FS-4 §9).
    FrameHeader,
    /// FC-2 frame: header, payload, fill and CRC (FC-FS-4 §9).
    Frame,
    /// Frame with SOF/EOF ordered sets (pcap link type 225).
    DelimitedFrame,
    /// RFC 3643 encapsulation header and the frame it encapsulates (FCIP, RFC 3821 §5.6).
    Encapsulation,
    /// Extended link service payload (FC-LS-3 §4).
    Els,
    /// Basic link service payload (FC-LS-3 §3).
    Bls,
    /// CT_IU preamble (FC-GS-7 §4.3).
    CtPreamble,
    /// Directory name server request or response (FC-GS-7 §5.2).
    NameServer,
    /// FCP information unit (FCP-4 §9).
    Fcp,
    /// SCSI command descriptor block (SPC-4 §4.2, SBC-3 §5).
    Cdb,
    /// SCSI sense data (SPC-4 §4.5).
    Sense,
    /// SCSI parameter data (INQUIRY data, VPD pages, READ CAPACITY data, ...).
    ScsiData,
    /// Switch internal link service payload (FC-SW-6 §6.1).
    SwIls,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::FrameHeader => "FC frame header",
            Layer::Frame => "FC frame",
            Layer::DelimitedFrame => "delimited FC frame",
            Layer::Encapsulation => "FC encapsulation",
            Layer::Els => "ELS",
            Layer::Bls => "BLS",
            Layer::CtPreamble => "CT_IU preamble",
            Layer::NameServer => "name server",
            Layer::Fcp => "FCP",
            Layer::Cdb => "SCSI CDB",
            Layer::Sense => "SCSI sense data",
            Layer::ScsiData => "SCSI parameter data",
            Layer::SwIls => "SW_ILS",
        })
    }
}

/// A buffer was shorter (or, where a maximum applies, longer) than the structure needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{layer}: need {required} bytes, got {actual}")]
pub struct LenError {
    /// What was being decoded.
    pub layer: Layer,
    /// Bytes the structure needs (the minimum, or the maximum when `actual` exceeds it).
    pub required: usize,
    /// Bytes available.
    pub actual: usize,
}

impl LenError {
    /// Checks that `actual >= required`.
    pub(crate) const fn check(
        layer: Layer,
        required: usize,
        actual: usize,
    ) -> Result<(), LenError> {
        if actual < required {
            Err(LenError {
                layer,
                required,
                actual,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_len_error_message() {
        let err = LenError::check(Layer::Els, 116, 20).unwrap_err();
        assert_eq!(err.to_string(), "ELS: need 116 bytes, got 20");
        assert!(LenError::check(Layer::Els, 4, 4).is_ok());
    }
}

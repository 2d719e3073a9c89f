//! TCP links (placeholder until the TCP link lands).

//! SNTP time stamps for the FCIP encapsulation header (RFC 3821 §5.6.1, format of RFC 2030 §3).
//!
//! An FCIP time stamp is 32 bits of seconds since 1900-01-01 00:00 UTC and 32 bits of binary
//! fraction. All zero means "no synchronized clock" ([`Timestamp::ZERO`]). The seconds wrap in
//! 2036; RFC 2030 §3 resolves the era by the top bit: set means 1968-2036, clear means
//! 2036-2104. [`sntp_diff`] follows that rule, so differences across the 2036 wrap come out
//! right.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fc_frames::encap::Timestamp;

/// Seconds from the SNTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const SNTP_UNIX_OFFSET: u64 = 0x83AA_7E80;

/// Nanoseconds in a second.
const NANOS: u64 = 1_000_000_000;

/// The SNTP time stamp of `t`. Times before 1970 give [`Timestamp::ZERO`] ("no clock"); the
/// seconds wrap modulo 2^32 as RFC 2030 §3 prescribes.
pub fn sntp_from_system_time(t: SystemTime) -> Timestamp {
    let Ok(since_unix) = t.duration_since(UNIX_EPOCH) else {
        return Timestamp::ZERO;
    };
    let seconds = since_unix.as_secs().wrapping_add(SNTP_UNIX_OFFSET) & 0xFFFF_FFFF;
    // subsec_nanos < 10^9, so the quotient is < 2^32.
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / NANOS;
    Timestamp {
        seconds: u32::try_from(seconds).unwrap_or(u32::MAX),
        fraction: u32::try_from(fraction).unwrap_or(u32::MAX),
    }
}

/// `a - b` as a duration, or `None` when `a` is earlier than `b`. The era of each stamp is
/// taken from its top bit (RFC 2030 §3).
pub fn sntp_diff(a: Timestamp, b: Timestamp) -> Option<Duration> {
    let d = fixed_point(a).checked_sub(fixed_point(b))?;
    let seconds = u64::try_from(d >> 32).ok()?;
    // The fraction is < 2^32, so the product fits and the quotient is < 10^9.
    let nanos = ((d & 0xFFFF_FFFF) * u128::from(NANOS)) >> 32;
    Some(Duration::new(seconds, u32::try_from(nanos).unwrap_or(0)))
}

/// Seconds since 1900 as 32.32 fixed point, with the era of RFC 2030 §3 resolved.
fn fixed_point(t: Timestamp) -> u128 {
    let mut seconds = u128::from(t.seconds);
    if t.seconds & 0x8000_0000 == 0 {
        // Top bit clear: 2036-2104, the era after the wrap.
        seconds += 1 << 32;
    }
    (seconds << 32) | u128::from(t.fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_unix_epoch() {
        assert_eq!(
            sntp_from_system_time(UNIX_EPOCH),
            Timestamp {
                seconds: 2_208_988_800,
                fraction: 0
            }
        );
        let half = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(
            sntp_from_system_time(half),
            Timestamp {
                seconds: 2_208_988_801,
                fraction: 0x8000_0000
            }
        );
        assert_eq!(
            sntp_from_system_time(UNIX_EPOCH - Duration::from_secs(1)),
            Timestamp::ZERO
        );
    }

    #[test]
    fn test_diff() {
        let a = Timestamp {
            seconds: 0xE8B0_1234,
            fraction: 0x4000_0000,
        };
        let b = Timestamp {
            seconds: 0xE8B0_1230,
            fraction: 0xC000_0000,
        };
        assert_eq!(sntp_diff(a, b), Some(Duration::from_millis(3500)));
        assert_eq!(sntp_diff(b, a), None);
        assert_eq!(sntp_diff(a, a), Some(Duration::ZERO));
    }

    #[test]
    fn test_diff_across_2036_wrap() {
        let before = Timestamp {
            seconds: 0xFFFF_FFFF,
            fraction: 0,
        };
        let after = Timestamp {
            seconds: 1,
            fraction: 0,
        };
        assert_eq!(sntp_diff(after, before), Some(Duration::from_secs(2)));
        assert_eq!(sntp_diff(before, after), None);
    }

    #[test]
    fn test_round_trip_with_system_time() {
        let t0 = UNIX_EPOCH + Duration::new(1_750_000_000, 123_456_789);
        let t1 = t0 + Duration::from_micros(2500);
        let d = sntp_diff(sntp_from_system_time(t1), sntp_from_system_time(t0)).unwrap();
        // Within one unit of 2^-32 s on each side.
        assert!(
            d.abs_diff(Duration::from_micros(2500)) < Duration::from_nanos(2),
            "{d:?}"
        );
    }
}

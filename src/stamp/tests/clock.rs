//! Time stamps and the clock's word: both formats round trip, error
//! estimates encode as RFC 4656 says, and the S bit is set only when the
//! kernel says the clock is synchronised, in the reflector's replies too.

use super::*;

#[test]
fn timestamps_round_trip_in_both_formats() {
    let t = UNIX_EPOCH + Duration::new(1_790_000_000, 123_456_789);
    let later = t + Duration::from_micros(1500);
    for format in [TimeFormat::Ntp, TimeFormat::Ptp] {
        let d = format.diff_ns(format.encode(later), format.encode(t));
        assert!((d - 1_500_000).abs() <= 1, "{format:?}: {d}");
        let back = format.diff_ns(format.encode(t), format.encode(later));
        assert!((back + 1_500_000).abs() <= 1, "{format:?}: {back}");
    }
    // NTP seconds count from 1900.
    assert_eq!(
        TimeFormat::Ntp.encode(UNIX_EPOCH) >> 32,
        super::NTP_UNIX_OFFSET
    );
    assert_eq!(TimeFormat::Ptp.error_estimate() & Z_BIT, Z_BIT);
    assert_eq!(TimeFormat::Ntp.error_estimate() & (Z_BIT | S_BIT), 0);
}

/// RFC 4656 §4.1.2: error = Multiplier × 2^(Scale − 32) s. Every encoding is
/// the smallest of the representation at or above the estimate.
#[test]
fn error_estimates_encode_the_smallest_representation_at_or_above() {
    // 0 µs: multiplier 1, scale 0 (233 ps), never multiplier 0.
    assert_eq!(encode_error_us(0), 1);
    // 1 µs = 4294.97 units of 2^-32 s: scale 5 (32 units) × 135 = 4320.
    assert_eq!(encode_error_us(1), (5 << 8) | 135);
    // 16 s (the kernel's esterror of an unsynchronised clock) = 2^36 units.
    assert_eq!(encode_error_us(16_000_000), (29 << 8) | 128);
    // 1 ms is 2^(22-32) s = 0.9766 ms rounded up: not scale 22 × 1.
    assert_ne!(encode_error_us(1_000), (22 << 8) | 1);
    assert_eq!(error_estimate_us((22 << 8) | 1), 977);
    // Past the largest value: the largest.
    assert_eq!(encode_error_us(u64::MAX), (63 << 8) | 255);
    for us in (0..2_000_000u64)
        .step_by(997)
        .chain([1, 999, 1_000_000, 1 << 40])
    {
        let e = encode_error_us(us);
        assert_eq!(e & (S_BIT | Z_BIT), 0, "{us}");
        let (scale, multiplier) = (u32::from(e >> 8), u128::from(e & 0xff));
        assert!(multiplier >= 1);
        let units = u128::from(us) << 32;
        let value = (multiplier << scale) * 1_000_000;
        assert!(value >= units, "{us} µs: {e:#x} is below it");
        // One step down (a smaller multiplier, or the same value one scale
        // finer when it fits) would be below the estimate.
        if multiplier > 1 {
            assert!(
                ((multiplier - 1) << scale) * 1_000_000 < units,
                "{us}: not smallest"
            );
        }
        if scale > 0 {
            let finer = (units).div_ceil(1_000_000 << (scale - 1));
            assert!(finer > 255, "{us}: scale {scale} not the finest");
        }
        assert!(error_estimate_us(e) >= us);
    }
}

#[test]
fn the_s_bit_needs_the_kernels_word() {
    let synced = crate::sys::KernelClock {
        unsync: false,
        time_error: false,
        maxerror_us: 20_000,
        esterror_us: 150,
    };
    let ntp = TimeFormat::Ntp;
    assert_eq!(
        ntp.error_estimate_of(Some(synced)),
        S_BIT | encode_error_us(150)
    );
    assert_eq!(
        TimeFormat::Ptp.error_estimate_of(Some(synced)),
        S_BIT | Z_BIT | encode_error_us(150)
    );
    for clock in [
        crate::sys::KernelClock {
            unsync: true,
            ..synced
        },
        crate::sys::KernelClock {
            time_error: true,
            ..synced
        },
        crate::sys::KernelClock {
            maxerror_us: MAX_SYNC_ERROR_US + 1,
            ..synced
        },
    ] {
        assert!(!clock_synchronized(&clock));
        assert_eq!(ntp.error_estimate_of(Some(clock)), encode_error_us(150));
    }
    assert!(clock_synchronized(&crate::sys::KernelClock {
        maxerror_us: MAX_SYNC_ERROR_US,
        ..synced
    }));
    // Unknown (the portable build): S clear, the old ≈ 1 ms.
    assert_eq!(ntp.error_estimate_of(None), ntp.error_estimate());
    assert_eq!(ntp.error_estimate() & S_BIT, 0);
}

/// The reflector's replies carry what the kernel says, read at most once a
/// second: S exactly when `clock_synchronized`.
#[test]
fn the_reflector_s_bit_is_the_kernels() {
    let mut r = Reflector::new(ReflectorConfig::default());
    let mut out = [0u8; OPEN_LEN];
    let request = {
        let mut b = [0u8; OPEN_LEN];
        SenderPacket {
            seq: 1,
            timestamp: 0,
            error_estimate: TimeFormat::Ntp.error_estimate(),
            ssid: 1,
        }
        .encode(Mode::Open, &mut b);
        b
    };
    let len = r
        .reflect(&request, source(), SystemTime::now(), 0, 64, &mut out)
        .unwrap();
    let got = ReflectedPacket::decode(Mode::Open, &out[..len]).unwrap();
    let expected = TimeFormat::Ntp.error_estimate_of(crate::sys::kernel_clock());
    // The kernel's esterror may move between the two readings; S may not
    // within this test on a host whose daemon is steady.
    assert_eq!(got.error_estimate & S_BIT, expected & S_BIT);
}

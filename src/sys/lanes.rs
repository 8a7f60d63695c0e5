//! Eight `u32` lanes computed at once: the loop detector's echo sets compare
//! eight tags and eight ages per lookup, three lookups a datagram. The
//! compiler's vectoriser turns the obvious loops into a mix of vector and
//! scalar code (about 60 instructions for one mask of eight); SSE2, which
//! every x86_64 processor has, does it in about a dozen. Elsewhere the same
//! operations are plain loops.
//!
//! Every operation is defined lane by lane, as the portable version spells
//! out, and the unit tests check the two against each other.

/// The two-operand methods of [`U32x8`]: each the implementation's function
/// of the same job.
macro_rules! lane_by_lane {
    ($($(#[$doc:meta])* $name:ident => $imp:ident;)*) => {$(
        $(#[$doc])*
        #[inline(always)]
        pub fn $name(self, other: U32x8) -> U32x8 {
            U32x8(imp::$imp(self.0, other.0))
        }
    )*};
}

/// Eight `u32` lanes. A *lane mask* (from the comparisons) has every bit of
/// a lane set where the comparison holds, none where it does not.
#[derive(Clone, Copy, Debug)]
pub struct U32x8(imp::Lanes);

impl U32x8 {
    /// The eight values of `array`, lane `i` from `array[i]`.
    #[inline(always)]
    pub fn load(array: &[u32; 8]) -> U32x8 {
        U32x8(imp::load(array))
    }

    /// `value` in every lane.
    #[inline(always)]
    pub fn splat(value: u32) -> U32x8 {
        U32x8(imp::splat(value))
    }

    /// Lane `i`: 1 where bit `i` of `bits` is set, else 0.
    #[inline(always)]
    pub fn from_bits(bits: u8) -> U32x8 {
        U32x8(imp::from_bits(bits))
    }

    lane_by_lane! {
        /// Lane by lane `self - other`, wrapping.
        wrapping_sub => sub;
        /// Lane by lane `self & other`.
        and => and;
        /// Lane by lane `self & !other`.
        and_not => and_not;
        /// Lane by lane `self | other`.
        or => or;
        /// The lane mask of `self == other`.
        eq => eq;
        /// The lane mask of `self < other`, unsigned.
        lt => lt;
    }

    /// Lane by lane `self << 1`.
    #[inline(always)]
    pub fn shl1(self) -> U32x8 {
        U32x8(imp::shl1(self.0))
    }

    /// Bit `i` set where lane `i` has its top bit set: where a comparison
    /// held, for a lane mask.
    #[inline(always)]
    pub fn bits(self) -> u8 {
        imp::bits(self.0)
    }

    /// The first lane holding the largest value (unsigned).
    #[inline(always)]
    pub fn first_max(self) -> usize {
        let max = imp::max(self.0);
        imp::bits(imp::eq(self.0, imp::splat(max))).trailing_zeros() as usize
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use sse2 as imp;

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
use portable as imp;

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code, unused_unsafe)]
mod sse2 {
    //! SSE2: two 128-bit registers of four lanes.
    //!
    //! SAFETY (every block here): this module is compiled only where SSE2
    //! is enabled for the whole build (the x86_64 baseline; a target built
    //! without it gets the portable code), so every intrinsic used exists
    //! on every processor the code runs on; none needs more than SSE2. The
    //! arithmetic intrinsics have no other precondition (the `allow` is for
    //! compilers that call them safe where SSE2 is enabled). The loads and
    //! stores go through references to `[u32; 8]`: 32 bytes, valid for
    //! reading (writing), and the unaligned forms need no alignment.
    use std::arch::x86_64::*;

    pub(super) type Lanes = [__m128i; 2];

    #[inline(always)]
    pub(super) fn load(array: &[u32; 8]) -> Lanes {
        let p = array.as_ptr().cast::<__m128i>();
        // SAFETY: see the module; `p` and `p + 1` are the array's two halves.
        unsafe { [_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))] }
    }

    #[cfg(test)]
    pub(super) fn to_array(lanes: Lanes) -> [u32; 8] {
        let mut out = [0u32; 8];
        let p = out.as_mut_ptr().cast::<__m128i>();
        // SAFETY: see the module; `p` and `p + 1` are the array's two halves.
        unsafe {
            _mm_storeu_si128(p, lanes[0]);
            _mm_storeu_si128(p.add(1), lanes[1]);
        }
        out
    }

    #[inline(always)]
    pub(super) fn splat(value: u32) -> Lanes {
        // SAFETY: see the module.
        let v = unsafe { _mm_set1_epi32(value as i32) };
        [v, v]
    }

    #[inline(always)]
    pub(super) fn from_bits(bits: u8) -> Lanes {
        // SAFETY: see the module.
        unsafe {
            let all = _mm_set1_epi32(i32::from(bits));
            let low = _mm_setr_epi32(1, 2, 4, 8);
            let high = _mm_setr_epi32(16, 32, 64, 128);
            let one = _mm_set1_epi32(1);
            [
                _mm_and_si128(_mm_cmpeq_epi32(_mm_and_si128(all, low), low), one),
                _mm_and_si128(_mm_cmpeq_epi32(_mm_and_si128(all, high), high), one),
            ]
        }
    }

    macro_rules! lanewise {
        ($name:ident, $op:ident) => {
            #[inline(always)]
            pub(super) fn $name(a: Lanes, b: Lanes) -> Lanes {
                // SAFETY: see the module.
                unsafe { [$op(a[0], b[0]), $op(a[1], b[1])] }
            }
        };
    }
    lanewise!(sub, _mm_sub_epi32);
    lanewise!(and, _mm_and_si128);
    lanewise!(or, _mm_or_si128);
    lanewise!(eq, _mm_cmpeq_epi32);

    #[inline(always)]
    pub(super) fn and_not(a: Lanes, b: Lanes) -> Lanes {
        // SAFETY: see the module. (`_mm_andnot_si128(x, y)` is `!x & y`.)
        unsafe { [_mm_andnot_si128(b[0], a[0]), _mm_andnot_si128(b[1], a[1])] }
    }

    #[inline(always)]
    pub(super) fn shl1(a: Lanes) -> Lanes {
        // SAFETY: see the module.
        unsafe { [_mm_slli_epi32::<1>(a[0]), _mm_slli_epi32::<1>(a[1])] }
    }

    /// Unsigned `a < b`: SSE2 compares signed only, so both sides are
    /// shifted by 2^31 first (flipping the top bit maps the unsigned
    /// order onto the signed one).
    #[inline(always)]
    pub(super) fn lt(a: Lanes, b: Lanes) -> Lanes {
        // SAFETY: see the module.
        unsafe {
            let top = _mm_set1_epi32(i32::MIN);
            [
                _mm_cmplt_epi32(_mm_xor_si128(a[0], top), _mm_xor_si128(b[0], top)),
                _mm_cmplt_epi32(_mm_xor_si128(a[1], top), _mm_xor_si128(b[1], top)),
            ]
        }
    }

    #[inline(always)]
    pub(super) fn bits(mask: Lanes) -> u8 {
        // SAFETY: see the module. Packing saturates, signed: any lane keeps
        // its sign through 16 and then 8 bits (a mask's -1 stays -1, 0
        // stays 0), so each byte's top bit is its lane's.
        unsafe {
            let words = _mm_packs_epi32(mask[0], mask[1]);
            _mm_movemask_epi8(_mm_packs_epi16(words, words)) as u8
        }
    }

    /// The largest lane (unsigned): a tournament of selects, four lanes
    /// against four, then two against two, then one against one.
    #[inline(always)]
    pub(super) fn max(a: Lanes) -> u32 {
        // SAFETY: see the module.
        unsafe {
            let top = _mm_set1_epi32(i32::MIN);
            // Biased: the signed order of these is the unsigned order of a.
            let pick = |x: __m128i, y: __m128i| {
                let y_bigger = _mm_cmpgt_epi32(y, x);
                _mm_or_si128(_mm_and_si128(y_bigger, y), _mm_andnot_si128(y_bigger, x))
            };
            let m = pick(_mm_xor_si128(a[0], top), _mm_xor_si128(a[1], top));
            let m = pick(m, _mm_shuffle_epi32::<0b01_00_11_10>(m));
            let m = pick(m, _mm_shuffle_epi32::<0b10_11_00_01>(m));
            (_mm_cvtsi128_si32(m) as u32) ^ 0x8000_0000
        }
    }
}

#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
#[allow(dead_code)]
mod portable {
    //! Plain loops, lane by lane; compiled for the tests everywhere, so that
    //! x86_64 checks them too.
    pub(super) type Lanes = [u32; 8];

    fn map(a: Lanes, b: Lanes, f: impl Fn(u32, u32) -> u32) -> Lanes {
        std::array::from_fn(|i| f(a[i], b[i]))
    }

    fn mask(holds: bool) -> u32 {
        if holds { u32::MAX } else { 0 }
    }

    pub(super) fn load(array: &[u32; 8]) -> Lanes {
        *array
    }

    #[cfg(test)]
    pub(super) fn to_array(lanes: Lanes) -> [u32; 8] {
        lanes
    }

    pub(super) fn splat(value: u32) -> Lanes {
        [value; 8]
    }

    pub(super) fn from_bits(bits: u8) -> Lanes {
        std::array::from_fn(|i| u32::from(bits >> i & 1))
    }

    pub(super) fn sub(a: Lanes, b: Lanes) -> Lanes {
        map(a, b, u32::wrapping_sub)
    }

    pub(super) fn and(a: Lanes, b: Lanes) -> Lanes {
        map(a, b, |x, y| x & y)
    }

    pub(super) fn and_not(a: Lanes, b: Lanes) -> Lanes {
        map(a, b, |x, y| x & !y)
    }

    pub(super) fn or(a: Lanes, b: Lanes) -> Lanes {
        map(a, b, |x, y| x | y)
    }

    pub(super) fn shl1(a: Lanes) -> Lanes {
        a.map(|x| x << 1)
    }

    pub(super) fn eq(a: Lanes, b: Lanes) -> Lanes {
        map(a, b, |x, y| mask(x == y))
    }

    pub(super) fn lt(a: Lanes, b: Lanes) -> Lanes {
        map(a, b, |x, y| mask(x < y))
    }

    pub(super) fn bits(lanes: Lanes) -> u8 {
        (0..8).fold(0, |bits, i| bits | u8::from(lanes[i] >> 31 == 1) << i)
    }

    pub(super) fn max(lanes: Lanes) -> u32 {
        lanes.into_iter().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::U32x8;

    /// Values that probe the edges: 0, 1, the signed boundary, the top.
    const EDGES: [u32; 8] = [
        0,
        1,
        0x7fff_ffff,
        0x8000_0000,
        0x8000_0001,
        u32::MAX - 1,
        u32::MAX,
        900,
    ];

    /// A reproducible stream of lane arrays: the edges shuffled, and mixes.
    fn samples() -> impl Iterator<Item = [u32; 8]> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..2000).map(move |i| {
            std::array::from_fn(|lane| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match i % 3 {
                    0 => EDGES[(x % 8) as usize],
                    1 => (x % 4) as u32, // many ties
                    _ => x as u32,
                }
                .wrapping_add(if i % 5 == 0 { lane as u32 } else { 0 })
            })
        })
    }

    fn mask_of(holds: impl Fn(usize) -> bool) -> u8 {
        (0..8).fold(0, |bits, i| bits | u8::from(holds(i)) << i)
    }

    /// Checks one implementation's functions against the definitions.
    macro_rules! check_implementation {
        ($imp:path) => {{
            use $imp as imp;
            let all: Vec<[u32; 8]> = samples().collect();
            let array = imp::to_array;
            for pair in all.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let (x, y) = (imp::load(&a), imp::load(&b));
                assert_eq!(array(x), a);
                assert_eq!(array(imp::splat(b[3])), [b[3]; 8]);
                let each =
                    |f: fn(u32, u32) -> u32| -> [u32; 8] { std::array::from_fn(|i| f(a[i], b[i])) };
                assert_eq!(array(imp::sub(x, y)), each(u32::wrapping_sub));
                assert_eq!(array(imp::and(x, y)), each(|p, q| p & q));
                assert_eq!(array(imp::and_not(x, y)), each(|p, q| p & !q));
                assert_eq!(array(imp::or(x, y)), each(|p, q| p | q));
                assert_eq!(array(imp::shl1(x)), a.map(|p| p << 1));
                assert_eq!(
                    imp::bits(imp::eq(x, y)),
                    mask_of(|i| a[i] == b[i]),
                    "{a:?} == {b:?}"
                );
                assert_eq!(
                    imp::bits(imp::lt(x, y)),
                    mask_of(|i| a[i] < b[i]),
                    "{a:?} < {b:?}"
                );
                assert_eq!(
                    imp::bits(x),
                    mask_of(|i| a[i] >> 31 == 1),
                    "top bits of {a:?}"
                );
                assert_eq!(imp::max(x), *a.iter().max().unwrap(), "{a:?}");
            }
            for bits in 0..=255u8 {
                let lanes = imp::from_bits(bits);
                assert_eq!(
                    array(lanes),
                    std::array::from_fn(|i| u32::from(bits >> i & 1))
                );
            }
        }};
    }

    #[test]
    fn each_implementation_is_the_lane_by_lane_definition() {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        check_implementation!(super::sse2);
        check_implementation!(super::portable);
    }

    #[test]
    fn first_max_is_the_first_of_the_largest() {
        for a in samples() {
            let max = *a.iter().max().unwrap();
            let first = a.iter().position(|&v| v == max).unwrap();
            assert_eq!(U32x8::load(&a).first_max(), first, "{a:?}");
        }
        for bits in 0..=255u8 {
            let ones = U32x8::from_bits(bits).eq(U32x8::splat(1)).bits();
            assert_eq!(ones, bits);
        }
    }
}

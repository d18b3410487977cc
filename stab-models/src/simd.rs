//! Run-time CPU dispatch for stab's own host kernels.
//!
//! The workspace is built for the baseline x86-64 (SSE2): a binary must run on any x86-64
//! CPU, so `-C target-cpu=native` is not an option. The host kernels (GELU, LayerNorm,
//! softmax, dropout masks) are written as 16-lane loops that LLVM vectorises; compiled for
//! the baseline they run 4 lanes at a time without FMA. [`multiversion!`] compiles a kernel
//! three times, for AVX-512 (x86-64-v4), AVX2 + FMA (v3) and the baseline, and picks the best
//! the CPU has, once per process. The kernels use no `mul_add`, so every version performs
//! the same IEEE operations and gives the same bits.

/// The instruction-set level of this CPU for the host kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// AVX-512 F/BW/DQ/VL with AVX2 and FMA.
    V4,
    /// AVX2 with FMA.
    V3,
    /// Whatever the target guarantees.
    Baseline,
}

/// The detected level (cached).
pub fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
                return Level::V4;
            }
            if has!("avx2") && has!("fma") {
                return Level::V3;
            }
        }
        Level::Baseline
    })
}

/// Defines `fn $name(args)` that runs `$body` compiled for the CPU's [`level`].
#[macro_export]
#[doc(hidden)]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn inner($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                fn v4($($arg: $ty),*) $(-> $ret)? { inner($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) $(-> $ret)? { inner($($arg),*) }
                match $crate::simd::level() {
                    // SAFETY: the level was detected on this CPU.
                    $crate::simd::Level::V4 => return unsafe { v4($($arg),*) },
                    $crate::simd::Level::V3 => return unsafe { v3($($arg),*) },
                    $crate::simd::Level::Baseline => {}
                }
            }
            inner($($arg),*)
        }
    };
}
pub use crate::multiversion;

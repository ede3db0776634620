//! The extended (XSAVE) state: which components a thread's save area holds
//! and how large that area is.
//!
//! Both sides compute it the same way, from XCR0 and CPUID leaf 0xD: the
//! kernel from the XCR0 really in force (on kvm-pvm ring 3 runs with the
//! host's XCR0, whatever the monitor set) and the CPUID it reads; the
//! monitor from the XCR0 it predicts, to refuse before boot. The logic is
//! pure so it can be tested on synthetic CPUs of every vendor.

/// x87 and SSE live in the 512-byte legacy region.
pub const X87: u64 = 1 << 0;
pub const SSE: u64 = 1 << 1;
pub const AVX: u64 = 1 << 2;
/// AVX-512: opmask registers, the upper halves of zmm0-15, zmm16-31.
pub const AVX512: u64 = 0b111 << 5;
pub const PKRU: u64 = 1 << 9;
pub const TILE_CONFIG: u64 = 1 << 17;
pub const TILE_DATA: u64 = 1 << 18;
/// The component number of AMX tile data, as `arch_prctl` names it.
pub const XFEATURE_TILE_DATA: u64 = 18;
/// Components Linux lets a program use only after
/// `arch_prctl(ARCH_REQ_XCOMP_PERM)`: without it, they are not saved.
pub const DYNAMIC: u64 = TILE_DATA;
/// The legacy region and the XSAVE header: the smallest area there is.
pub const LEGACY_AND_HEADER: u64 = 576;
/// The most the kernel reserves per thread (today's largest CPU, with AMX,
/// needs 11,008 bytes).
pub const MAX_AREA: u64 = 64 * 1024;

/// CPUID leaf 0xD, where XSAVE describes its components.
pub const CPUID_LEAF: u32 = 0xd;

/// A thread's save area: the components it holds, in the standard
/// (non-compacted) format that `xsave`/`xrstor` use, and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// In force and advertised: the components a program may use.
    pub components: u64,
    /// Bytes, a multiple of 64.
    pub size: u64,
    /// Bytes for every component but the dynamic ones, a multiple of 64:
    /// what a signal frame holds until the program asks for those.
    pub size_without_dynamic: u64,
    /// In force but not advertised by CPUID: the program is told they don't
    /// exist, so they are neither saved nor offered.
    pub hidden: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// CPUID leaf 0xD says nothing (no XSAVE): isles need it.
    NoXsave,
    /// An advertised component has no size in CPUID 0xD.
    Undescribed { component: u32 },
    /// The area would be larger than [`MAX_AREA`].
    TooLarge { size: u64 },
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::NoXsave => write!(f, "the CPU has no XSAVE (CPUID leaf 0xD is empty)"),
            LayoutError::Undescribed { component } => write!(
                f,
                "XSAVE component {component} is enabled but CPUID 0xD gives it no size"
            ),
            LayoutError::TooLarge { size } => write!(
                f,
                "the CPU's extended state needs a {size}-byte save area per thread, more than the {MAX_AREA} an isle reserves"
            ),
        }
    }
}

/// The save area for `xcr0` on a CPU whose `cpuid(leaf, subleaf)` returns
/// `[eax, ebx, ecx, edx]`.
pub fn layout(xcr0: u64, cpuid: impl Fn(u32, u32) -> [u32; 4]) -> Result<Layout, LayoutError> {
    let main = cpuid(CPUID_LEAF, 0);
    let advertised = u64::from(main[0]) | (u64::from(main[3]) << 32);
    if advertised & (X87 | SSE) != X87 | SSE {
        return Err(LayoutError::NoXsave);
    }
    let components = xcr0 & advertised;
    let mut size = LEGACY_AND_HEADER;
    let mut size_without_dynamic = LEGACY_AND_HEADER;
    for component in 2..64 {
        if components & (1 << component) == 0 {
            continue;
        }
        let [component_size, offset, ..] = cpuid(CPUID_LEAF, component);
        if component_size == 0 {
            return Err(LayoutError::Undescribed { component });
        }
        let end = u64::from(offset) + u64::from(component_size);
        size = size.max(end);
        if DYNAMIC & (1 << component) == 0 {
            size_without_dynamic = size_without_dynamic.max(end);
        }
    }
    let size = size.next_multiple_of(64);
    let size_without_dynamic = size_without_dynamic.next_multiple_of(64);
    if size > MAX_AREA {
        return Err(LayoutError::TooLarge { size });
    }
    Ok(Layout {
        components,
        size,
        size_without_dynamic,
        hidden: xcr0 & !advertised,
    })
}

impl Layout {
    /// What `xsave`/`xrstor` move for a program: every component it may
    /// use, the dynamic ones only once it asked for them.
    pub fn save_mask(&self, dynamic_permitted: bool) -> u64 {
        if dynamic_permitted {
            self.components
        } else {
            self.components & !DYNAMIC
        }
    }

    /// Bytes that [`Self::save_mask`]`(dynamic_permitted)` moves.
    pub fn save_size(&self, dynamic_permitted: bool) -> u64 {
        if dynamic_permitted {
            self.size
        } else {
            self.size_without_dynamic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic CPU: CPUID 0xD sub-leaves as (component, size, offset),
    /// and the sub-leaf 0 mask and maximum size.
    struct Cpu {
        advertised: u64,
        max_size: u32,
        components: &'static [(u32, u32, u32)],
    }

    impl Cpu {
        fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
            if leaf != CPUID_LEAF {
                return [0; 4];
            }
            if subleaf == 0 {
                return [
                    self.advertised as u32,
                    self.max_size,
                    self.max_size,
                    (self.advertised >> 32) as u32,
                ];
            }
            self.components
                .iter()
                .find(|(component, ..)| *component == subleaf)
                .map(|&(_, size, offset)| [size, offset, 0, 0])
                .unwrap_or([0; 4])
        }
    }

    /// AMD Zen 4 (EPYC 9004): AVX-512 and PKRU, no AMX; AMD packs the
    /// AVX-512 components right after AVX.
    const ZEN4: Cpu = Cpu {
        advertised: 0x2e7,
        max_size: 2440,
        components: &[
            (2, 256, 576),
            (5, 64, 832),
            (6, 512, 896),
            (7, 1024, 1408),
            (9, 8, 2432),
        ],
    };

    /// AMD Zen 3 (EPYC 7003): AVX2 and PKRU.
    const ZEN3: Cpu = Cpu {
        advertised: 0x207,
        max_size: 2440,
        components: &[(2, 256, 576), (9, 8, 2432)],
    };

    /// Intel Sapphire Rapids: AVX-512, PKRU and AMX at Intel's offsets.
    const SAPPHIRE_RAPIDS: Cpu = Cpu {
        advertised: 0x602e7,
        max_size: 11008,
        components: &[
            (2, 256, 576),
            (5, 64, 1088),
            (6, 512, 1152),
            (7, 1024, 1664),
            (9, 8, 2688),
            (17, 64, 2752),
            (18, 8192, 2816),
        ],
    };

    /// A CPU with XSAVE but no AVX (an Atom, or QEMU's default model).
    const NO_AVX: Cpu = Cpu {
        advertised: 0x3,
        max_size: 576,
        components: &[],
    };

    fn layout_on(cpu: &Cpu, xcr0: u64) -> Result<Layout, LayoutError> {
        layout(xcr0, |leaf, subleaf| cpu.cpuid(leaf, subleaf))
    }

    #[test]
    fn zen4_saves_avx512_and_pkru_in_2440_bytes() {
        let layout = layout_on(&ZEN4, 0x2e7).unwrap();
        assert_eq!(layout.components, 0x2e7);
        assert_eq!(layout.size, 2496); // 2440 rounded up to 64
        assert_eq!(layout.save_mask(false), 0x2e7);
    }

    #[test]
    fn zen3_has_no_avx512() {
        let layout = layout_on(&ZEN3, 0x207).unwrap();
        assert_eq!(layout.components, 0x207);
        assert_eq!(layout.size, 2496);
    }

    #[test]
    fn sapphire_rapids_with_amx_needs_11008_bytes() {
        let layout = layout_on(&SAPPHIRE_RAPIDS, 0x602e7).unwrap();
        assert_eq!(layout.components, 0x602e7);
        assert_eq!(layout.size, 11008);
        assert_eq!(layout.save_size(true), 11008);
        // Up to the tile configuration, which ends at 2816.
        assert_eq!(layout.save_size(false), 2816);
        // Tile data only once the program asked for it, as on Linux.
        assert_eq!(layout.save_mask(false), 0x202e7);
        assert_eq!(layout.save_mask(true), 0x602e7);
    }

    /// The bug this module exists for: the host's XCR0 enables AMX while the
    /// isle's CPUID doesn't offer it. The area must not be sized, nor the
    /// mask set, for what CPUID hides.
    #[test]
    fn xcr0_beyond_what_cpuid_offers_is_not_saved() {
        let hidden_amx = Cpu {
            advertised: 0x2e7,
            max_size: 2696,
            ..SAPPHIRE_RAPIDS
        };
        let layout = layout_on(&hidden_amx, 0x602e7).unwrap();
        assert_eq!(layout.components, 0x2e7);
        assert_eq!(layout.size, 2752); // PKRU ends at 2696
        assert_eq!(layout.hidden, TILE_CONFIG | TILE_DATA);
        assert_eq!(layout.save_mask(true) & (TILE_CONFIG | TILE_DATA), 0);
    }

    #[test]
    fn without_avx_only_the_legacy_region() {
        let layout = layout_on(&NO_AVX, 0x3).unwrap();
        assert_eq!(layout.components, 0x3);
        assert_eq!(layout.size, LEGACY_AND_HEADER);
    }

    #[test]
    fn an_xcr0_smaller_than_cpuid_offers_sizes_for_xcr0() {
        // Hardware KVM with the monitor's XCR0 of x87|SSE|AVX on a Zen 4.
        let layout = layout_on(&ZEN4, 0x7).unwrap();
        assert_eq!(layout.components, 0x7);
        assert_eq!(layout.size, 832);
    }

    #[test]
    fn refusals() {
        let no_xsave = Cpu {
            advertised: 0,
            max_size: 0,
            components: &[],
        };
        assert_eq!(layout_on(&no_xsave, 0x3), Err(LayoutError::NoXsave));
        let undescribed = Cpu {
            components: &[(2, 256, 576)],
            ..ZEN4
        };
        assert_eq!(
            layout_on(&undescribed, 0x2e7),
            Err(LayoutError::Undescribed { component: 5 })
        );
        let huge = Cpu {
            advertised: 0x80007,
            max_size: 70000,
            components: &[(2, 256, 576), (19, 65536, 4096)],
        };
        assert_eq!(
            layout_on(&huge, 0x80007),
            Err(LayoutError::TooLarge { size: 69632 })
        );
    }
}

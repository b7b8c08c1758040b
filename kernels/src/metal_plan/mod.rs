//! What the Metal backend dispatches, as data: for each op, a pure function
//! returns a [`Plan`], the ordered passes (kernel, grid, threadgroup size,
//! threadgroup memory, arguments by buffer slot) and the buffers they use,
//! named by role. `src/metal/` executes a plan on a `MetalDevice`; the host
//! emulator of `tests/msl_group_check.rs` executes the same plan, which is
//! why this module builds without the `metal` feature: the dispatch
//! arithmetic that only a Mac could run before is now run and checked here.
//!
//! Buffers are [`Buf`]s: the op's inputs (bound by the executor where the
//! tensor's data starts), outputs and temporaries that the executor
//! allocates, and host arrays it uploads. Parameter structs travel as the
//! bytes of their C layout, the layout the kernels read.

pub mod channel_stats;
pub mod gemm;
pub mod gumbel_sample;
pub mod hadamard;
pub mod rotate_quantize;

use std::sync::Arc;

use candle_core::{bail, DType, Result};

/// A source file of `src/metal/` (one Metal library each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Module {
    /// `hadamard.metal`.
    Hadamard,
    /// `rotate_quantize.metal`.
    RotateQuantize,
    /// `channel_stats.metal`.
    ChannelStats,
    /// `gemm.metal`.
    GemmW8a8,
    /// `gumbel_sample.metal`.
    GumbelSample,
}

impl Module {
    /// The library's name (the key of its pipeline cache).
    pub fn name(self) -> &'static str {
        match self {
            Module::Hadamard => "hadamard",
            Module::RotateQuantize => "rotate_quantize",
            Module::ChannelStats => "channel_stats",
            Module::GemmW8a8 => "gemm_w8a8",
            Module::GumbelSample => "gumbel_sample",
        }
    }

    /// The file in `src/metal/` that holds its MSL, without `.metal`.
    pub fn file(self) -> &'static str {
        match self {
            Module::GemmW8a8 => "gemm",
            other => other.name(),
        }
    }
}

/// A buffer of a plan, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buf {
    /// Input `i` of the op: the caller's buffer, from where its data starts.
    Input(usize),
    /// Output `i`, allocated by the executor and handed back.
    Output(usize),
    /// Temporary `i`, allocated by the executor and dropped after encoding.
    Temp(usize),
    /// Upload `i`: a host array on the device.
    Upload(usize),
}

/// A buffer the executor allocates (contents undefined).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBuffer {
    /// Elements.
    pub count: usize,
    /// Element type (its size gives the bytes).
    pub dtype: DType,
    /// The label of the allocation (`MetalDevice::new_buffer`'s name).
    pub label: &'static str,
}

/// A host array that a pass reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Upload {
    /// Uploaded once per device and array and kept while the array lives
    /// (signs, mix matrices, the bucket table): the arrays are shared
    /// `Arc`s that live as long as the op or the process.
    KeptF32(Arc<[f32]>),
    /// As `KeptF32`: a GEMM tile map.
    KeptU32(Arc<[u32]>),
    /// Uploaded for this call only (the sampler's positions).
    OnceU64(Vec<u64>),
}

/// One argument of a pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A buffer the kernel only reads, bound `offset` bytes past the start
    /// of the [`Buf`] (for an input, past where its data starts).
    Read(Buf, usize),
    /// A buffer the kernel writes (and may read); as `Read` otherwise. The
    /// Metal backend orders a write after earlier reads and writes of the
    /// same buffer, so the distinction matters.
    Write(Buf, usize),
    /// A slot this pass's configuration never reads, bound (at byte 0 of
    /// the buffer itself, an input's offset not added) only because the
    /// kernel declares it.
    Unread(Buf),
    /// A constant (`set_bytes`): a parameter struct's bytes, or a scalar's.
    Bytes(Vec<u8>),
}

impl Arg {
    /// A `uint` constant.
    pub fn u32(v: u32) -> Arg {
        Arg::Bytes(v.to_le_bytes().to_vec())
    }
}

/// A width × height size (threadgroups of a grid, or threads of a group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// x.
    pub width: usize,
    /// y.
    pub height: usize,
}

/// `width × height`.
pub const fn size(width: usize, height: usize) -> Size {
    Size { width, height }
}

/// One dispatch: `threadgroups` groups of `threads` threads running
/// `kernel` of `module`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pass {
    /// The library that holds the kernel.
    pub module: Module,
    /// The kernel's (host) name.
    pub kernel: String,
    /// Threadgroups of the grid.
    pub threadgroups: Size,
    /// Threads of each threadgroup.
    pub threads: Size,
    /// (buffer slot, argument), in the order they are set.
    pub args: Vec<(usize, Arg)>,
    /// (threadgroup slot, bytes): lengths of `[[threadgroup(i)]]` memory
    /// (Metal requires multiples of 16 bytes).
    pub threadgroup_memory: Vec<(usize, usize)>,
}

/// An op's dispatches: allocate `outputs` and `temps`, upload `uploads`,
/// then encode `passes` in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The op's results, [`Buf::Output`] `i`.
    pub outputs: Vec<NewBuffer>,
    /// Intermediates, [`Buf::Temp`] `i`.
    pub temps: Vec<NewBuffer>,
    /// Host arrays, [`Buf::Upload`] `i`.
    pub uploads: Vec<Upload>,
    /// The dispatches, in order.
    pub passes: Vec<Pass>,
}

impl Plan {
    /// Declares the next output.
    pub fn output(&mut self, count: usize, dtype: DType, label: &'static str) -> Buf {
        self.outputs.push(NewBuffer {
            count,
            dtype,
            label,
        });
        Buf::Output(self.outputs.len() - 1)
    }

    /// Declares a temporary.
    pub fn temp(&mut self, count: usize, dtype: DType, label: &'static str) -> Buf {
        self.temps.push(NewBuffer {
            count,
            dtype,
            label,
        });
        Buf::Temp(self.temps.len() - 1)
    }

    /// Declares an upload.
    pub fn upload(&mut self, data: Upload) -> Buf {
        self.uploads.push(data);
        Buf::Upload(self.uploads.len() - 1)
    }
}

/// The kernels' name suffix for a float dtype.
pub fn dtype_name(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        other => bail!("unsupported dtype {other:?}, expected f32, bf16 or f16"),
    })
}

/// A field of a parameter struct: its little-endian bytes.
pub trait ParamField: Copy {
    /// Appends the bytes to `out`.
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! param_fields {
    ($($t:ty),*) => {$(
        impl ParamField for $t {
            fn put(self, out: &mut Vec<u8>) {
                out.extend(self.to_le_bytes());
            }
        }
    )*};
}
param_fields!(u32, u64, f32);

/// Zeros up to the next multiple of `align` bytes after `start`.
#[doc(hidden)]
pub fn pad_to(out: &mut Vec<u8>, start: usize, align: usize) {
    out.resize(start + (out.len() - start).next_multiple_of(align), 0);
}

/// A `#[repr(C)]` parameter struct as the kernels declare it, with
/// `bytes()`: its C layout (padding zeroed, so that no uninitialised byte
/// is copied), checked field by field against Rust's own layout.
macro_rules! params {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $t:ty),* $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug)]
        pub struct $name {
            $(pub $field: $t),*
        }

        impl $name {
            /// The bytes the kernel reads.
            pub fn bytes(&self) -> Vec<u8> {
                let mut out = Vec::with_capacity(std::mem::size_of::<Self>());
                $(
                    $crate::metal_plan::pad_to(&mut out, 0, std::mem::align_of::<$t>());
                    assert_eq!(out.len(), std::mem::offset_of!(Self, $field));
                    $crate::metal_plan::ParamField::put(self.$field, &mut out);
                )*
                $crate::metal_plan::pad_to(&mut out, 0, std::mem::align_of::<Self>());
                assert_eq!(out.len(), std::mem::size_of::<Self>());
                out
            }
        }
    };
}
pub(crate) use params;

#[cfg(test)]
mod tests {
    params!(Padded { a: u64, b: u32 });

    #[test]
    fn params_bytes_follow_the_c_layout_with_zero_padding() {
        let p = Padded { a: 0x0102, b: 7 };
        assert_eq!(
            p.bytes(),
            [2, 1, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0].to_vec()
        );
    }
}

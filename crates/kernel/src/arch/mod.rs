//! Architecture code: all assembly and nearly all `unsafe` of the kernel lives below.
#![allow(unsafe_code)]

pub mod x86_64;

//! Every kernel name the driver uses: the shared kernel layer `wdm-nt` (crates/wdm-nt),
//! which both drivers build on. Above this module no code names wdk-sys or the mingw-w64
//! bindings, so the glue is the same source in both builds.

pub use wdm_nt::*;

//! Finding the ksalloc filter among device interface paths (UTF-16, as
//! `IoGetDeviceInterfaces` and SetupAPI return them).
//!
//! A KS filter's interface path is `<prefix>\<device>#{category}\<reference string>`;
//! ksalloc's INF registers KSCATEGORY_DATATRANSFORM with the reference string
//! `{9B365890-165F-11D0-A195-0020AFD156E4}` (KSNAME_Filter). Other KS drivers may use
//! the same reference string, so ksprobe also checks which driver serves the device
//! (`DRIVER_OBJECT.DriverName == \Driver\ksalloc`) before it picks one.

use alloc::vec::Vec;

use ks_abi::guid::KSNAME_FILTER;

/// The driver name ksprobe looks for behind a candidate interface.
pub const KSALLOC_DRIVER_NAME: &str = "\\Driver\\ksalloc";

/// The entries of a `REG_MULTI_SZ`-style list (strings ended by NUL, the list by an
/// empty string or the end of the buffer).
pub fn multi_sz(list: &[u16]) -> impl Iterator<Item = &[u16]> {
    list.split(|&c| c == 0).take_while(|s| !s.is_empty())
}

/// Whether UTF-16 `a` equals ASCII `b`, ignoring ASCII case.
#[must_use]
pub fn eq_ascii_ignore_case(a: &[u16], b: &str) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.bytes())
            .all(|(&x, y)| u8::try_from(x).is_ok_and(|x| x.eq_ignore_ascii_case(&y)))
}

/// The reference string of an interface path (after its last backslash).
#[must_use]
pub fn reference_string(path: &[u16]) -> &[u16] {
    path.iter()
        .rposition(|&c| c == u16::from(b'\\'))
        .map_or(path, |i| &path[i + 1..])
}

/// Whether the path's reference string is KSNAME_Filter.
#[must_use]
pub fn is_filter_interface(path: &[u16]) -> bool {
    let braced = KSNAME_FILTER.to_braced_ascii();
    let reference = reference_string(path);
    reference.len() == braced.len()
        && reference
            .iter()
            .zip(braced)
            .all(|(&x, y)| u8::try_from(x).is_ok_and(|x| x.eq_ignore_ascii_case(&y)))
}

/// The interface paths in `list` that are KS filter interfaces, in list order.
pub fn filter_candidates(list: &[u16]) -> impl Iterator<Item = &[u16]> {
    multi_sz(list).filter(|p| is_filter_interface(p))
}

/// The NT form of a path a user-mode tool printed: `\\?\` or `\\.\` become `\??\`;
/// anything else is kept.
#[must_use]
pub fn to_nt_path(path: &[u16]) -> Vec<u16> {
    let prefix: Vec<u16> = path.iter().take(4).copied().collect();
    let mut out = Vec::with_capacity(path.len());
    if eq_ascii_ignore_case(&prefix, "\\\\?\\") || eq_ascii_ignore_case(&prefix, "\\\\.\\") {
        out.extend("\\??\\".encode_utf16());
        out.extend_from_slice(&path[4..]);
    } else {
        out.extend_from_slice(path);
    }
    out
}

/// Whether a `DRIVER_OBJECT.DriverName` is ksalloc's.
#[must_use]
pub fn is_ksalloc_driver(name: &[u16]) -> bool {
    eq_ascii_ignore_case(name, KSALLOC_DRIVER_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn picks_filter_interfaces_from_a_multi_sz() {
        let a = "\\??\\ROOT#MEDIA#0000#{2eb07ea0-7e70-11d0-a5d6-28db04c10000}\\{9b365890-165f-11d0-a195-0020afd156e4}";
        let b = "\\??\\ROOT#MEDIA#0001#{2eb07ea0-7e70-11d0-a5d6-28db04c10000}\\wave";
        let c = "\\??\\SWD#DEVGEN#{X}#{2eb07ea0-7e70-11d0-a5d6-28db04c10000}\\{9B365890-165F-11D0-A195-0020AFD156E4}";
        let mut list = Vec::new();
        for s in [a, b, c] {
            list.extend(w(s));
            list.push(0);
        }
        list.push(0);
        let found: Vec<&[u16]> = filter_candidates(&list).collect();
        assert_eq!(found, [w(a).as_slice(), w(c).as_slice()]);
        assert_eq!(multi_sz(&[0, 0]).count(), 0);
        assert_eq!(multi_sz(&w("x")).count(), 1, "no terminator: one entry");
    }

    #[test]
    fn nt_paths_and_driver_names() {
        assert_eq!(to_nt_path(&w("\\\\?\\root#x\\y")), w("\\??\\root#x\\y"));
        assert_eq!(to_nt_path(&w("\\\\.\\ksprobe")), w("\\??\\ksprobe"));
        assert_eq!(to_nt_path(&w("\\??\\a")), w("\\??\\a"));
        assert_eq!(to_nt_path(&w("ab")), w("ab"));
        assert!(is_ksalloc_driver(&w("\\Driver\\KSALLOC")));
        assert!(!is_ksalloc_driver(&w("\\Driver\\ksallocx")));
        assert_eq!(reference_string(&w("noslash")), w("noslash").as_slice());
    }
}

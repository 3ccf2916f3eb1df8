//! `ksprobe_scenarios::requests` against the bad-input catalogue of the model: until the
//! two are one table, every IOCTL case of the catalogue must be in ksprobe's table with
//! the same bytes, mode, target, status and Information, and nothing else may claim a
//! catalogue name.

use ksalloc_model::catalogue::{self, Op, Target as CatalogueTarget};
use ksalloc_model::RequestorMode;
use ksprobe_scenarios::requests::{catalogue_cases, user_cases, Buffer, IoctlCase, Mode, Target};

/// The catalogue's bytes for a buffer of ksprobe's table (the catalogue's harness puts
/// its spare event where the buffer is empty).
fn catalogue_bytes(buffer: &Buffer) -> Vec<u8> {
    match buffer {
        Buffer::Bytes(bytes) => bytes.clone(),
        Buffer::SpareEvent => Vec::new(),
        Buffer::Bad { .. } => panic!("the catalogue has no bad addresses"),
    }
}

fn same(ours: &IoctlCase, theirs: &catalogue::Case) -> Result<(), String> {
    let Op::Ioctl {
        target,
        code,
        input,
        data,
        mode,
    } = &theirs.op
    else {
        return Err(format!("{}: not an IOCTL in the catalogue", ours.name));
    };
    let target = match target {
        CatalogueTarget::Filter => Target::Filter,
        CatalogueTarget::Pin => Target::Pin,
        CatalogueTarget::Allocator => Target::Allocator,
        CatalogueTarget::Device => return Err(format!("{}: sent to the device", ours.name)),
    };
    let mode = match mode {
        RequestorMode::Kernel => Mode::Kernel,
        RequestorMode::User => Mode::User,
    };
    let checks = [
        ("target", target == ours.target),
        ("code", *code == ours.code),
        ("request bytes", *input == catalogue_bytes(&ours.input)),
        ("data bytes", *data == catalogue_bytes(&ours.data)),
        ("mode", mode == ours.mode),
        ("status", theirs.status == ours.status),
        ("Information", theirs.information == ours.information),
    ];
    match checks.iter().find(|(_, ok)| !ok) {
        Some((what, _)) => Err(format!("{}: {what} differs from the catalogue", ours.name)),
        None => Ok(()),
    }
}

#[test]
fn the_table_is_the_catalogues_ioctl_cases() {
    let catalogue = catalogue::cases();
    let ours = catalogue_cases();
    for case in &ours {
        let theirs = catalogue
            .iter()
            .find(|c| c.name == case.name)
            .unwrap_or_else(|| panic!("{}: not in the catalogue", case.name));
        same(case, theirs).unwrap();
    }
    let ioctls: Vec<&str> = catalogue
        .iter()
        .filter(|c| matches!(c.op, Op::Ioctl { .. }))
        .map(|c| c.name)
        .collect();
    let names: Vec<&str> = ours.iter().map(|c| c.name).collect();
    assert_eq!(names, ioctls, "every catalogue IOCTL case, in its order");
    println!("{} catalogue IOCTL cases in ksprobe's table", names.len());
}

#[test]
fn user_cases_are_user_mode_and_named_apart_from_the_catalogue() {
    let catalogue = catalogue::cases();
    let users = user_cases();
    assert!(users.len() >= 8);
    for case in &users {
        assert_eq!(case.mode, Mode::User, "{}", case.name);
        assert!(
            catalogue.iter().all(|c| c.name != case.name),
            "{} claims a catalogue name",
            case.name
        );
    }
    let bad = users
        .iter()
        .filter(|c| matches!(c.input, Buffer::Bad { .. }) || matches!(c.data, Buffer::Bad { .. }))
        .count();
    assert!(bad >= 6, "bad-address cases: {bad}");
}

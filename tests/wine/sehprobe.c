/*
 * A kernel-mode client for the Wine run, for the one check a user-mode client cannot
 * make there: ksalloc's SEH capture (src/seh/capture.c) faulting on a user-mode
 * requestor's METHOD_NEITHER input pointer. Wine's user-mode path copies METHOD_NEITHER
 * input into the driver host before dispatch, so an unreadable pointer never reaches the
 * driver from ksclient.exe. This driver runs in the same winedevice.exe as ksalloc (same
 * service group), opens ksalloc's filter the way the I/O manager would (its own
 * FILE_OBJECT, IRP_MJ_CREATE), then sends IOCTL_KS_PROPERTY with Type3InputBuffer = 0x10
 * and RequestorMode = UserMode: the driver must complete it with STATUS_ACCESS_VIOLATION,
 * and must still answer a valid request afterwards.
 *
 * DriverEntry writes both statuses to its service key (DWORDs BadPointer, StillServing)
 * for tests/wine/run.sh, and fails (so the service does not start) when either is wrong.
 */
#include <ntddk.h>

NTKERNELAPI NTSTATUS NTAPI ObReferenceObjectByName(PUNICODE_STRING ObjectName, ULONG Attributes,
    PACCESS_STATE PassedAccessState, ACCESS_MASK DesiredAccess, POBJECT_TYPE ObjectType,
    KPROCESSOR_MODE AccessMode, PVOID ParseContext, PVOID *Object);

#define IOCTL_KS_PROPERTY 0x002F0003
#define STATUS_ACCESS_VIOLATION_CODE ((NTSTATUS)0xC0000005L)
#define IO_TYPE_FILE_OBJECT 5
#define PROBE_TAG 0x70624553u /* "SEbp" */

static NTSTATUS NTAPI keep_irp(PDEVICE_OBJECT device, PIRP irp, PVOID context)
{
    (void)device;
    (void)irp;
    (void)context;
    return STATUS_MORE_PROCESSING_REQUIRED;
}

/* Sends one IRP to `device` for `file` and returns its final status. ksalloc answers
 * these synchronously; the IRP is ours again after the completion routine. */
static NTSTATUS call(PDEVICE_OBJECT device, PFILE_OBJECT file, UCHAR major, KPROCESSOR_MODE mode,
                     PVOID in, ULONG in_len, PVOID out, ULONG out_len)
{
    PIRP irp = IoAllocateIrp(device->StackSize, FALSE);
    if (!irp)
        return STATUS_INSUFFICIENT_RESOURCES;
    irp->RequestorMode = mode;
    irp->UserBuffer = out;
    PIO_STACK_LOCATION stack = IoGetNextIrpStackLocation(irp);
    stack->MajorFunction = major;
    stack->DeviceObject = device;
    stack->FileObject = file;
    if (major == IRP_MJ_DEVICE_CONTROL) {
        stack->Parameters.DeviceIoControl.IoControlCode = IOCTL_KS_PROPERTY;
        stack->Parameters.DeviceIoControl.InputBufferLength = in_len;
        stack->Parameters.DeviceIoControl.OutputBufferLength = out_len;
        stack->Parameters.DeviceIoControl.Type3InputBuffer = in;
    }
    IoSetCompletionRoutine(irp, keep_irp, NULL, TRUE, TRUE, TRUE);
    NTSTATUS status = IoCallDriver(device, irp);
    if (status != STATUS_PENDING)
        status = irp->IoStatus.Status;
    IoFreeIrp(irp);
    return status;
}

static void record(PUNICODE_STRING key, PCWSTR name, NTSTATUS status)
{
    ULONG value = (ULONG)status;
    RtlWriteRegistryValue(RTL_REGISTRY_ABSOLUTE, key->Buffer, name, REG_DWORD, &value, sizeof value);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registry_path)
{
    (void)driver;
    UNICODE_STRING type_name = RTL_CONSTANT_STRING(L"IoDriverObjectType");
    POBJECT_TYPE *driver_type = MmGetSystemRoutineAddress(&type_name);
    UNICODE_STRING ksalloc_name = RTL_CONSTANT_STRING(L"\\Driver\\ksalloc");
    PDRIVER_OBJECT ksalloc = NULL;
    NTSTATUS status = driver_type ? ObReferenceObjectByName(&ksalloc_name, OBJ_CASE_INSENSITIVE, NULL, 0,
                                                            *driver_type, KernelMode, NULL, (PVOID *)&ksalloc)
                                  : STATUS_NOT_FOUND;
    if (!NT_SUCCESS(status) || !ksalloc->DeviceObject) {
        record(registry_path, L"BadPointer", NT_SUCCESS(status) ? STATUS_NO_SUCH_DEVICE : status);
        return STATUS_UNSUCCESSFUL;
    }
    PDEVICE_OBJECT device = ksalloc->DeviceObject;
    PFILE_OBJECT file = ExAllocatePoolWithTag(NonPagedPool, sizeof *file, PROBE_TAG);
    if (!file) {
        ObDereferenceObject(ksalloc);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    RtlZeroMemory(file, sizeof *file);
    file->Type = IO_TYPE_FILE_OBJECT;
    file->Size = sizeof *file;
    file->DeviceObject = device;
    /* An empty name opens the filter, as \\.\ksalloc does. */
    NTSTATUS opened = call(device, file, IRP_MJ_CREATE, KernelMode, NULL, 0, NULL, 0);
    NTSTATUS bad = opened, alive = opened;
    if (NT_SUCCESS(opened)) {
        ULONG value = 0;
        bad = call(device, file, IRP_MJ_DEVICE_CONTROL, UserMode, (PVOID)0x10, 24, &value, sizeof value);
        /* KSPROPERTY_PIN_CTYPES of KSPROPSETID_Pin, KSPROPERTY_TYPE_GET, from kernel mode. */
        static const GUID pin_set = {0x8C134960, 0x51AD, 0x11CF, {0x87, 0x8A, 0x94, 0xF8, 0x01, 0xC1, 0x00, 0x00}};
        struct { GUID set; ULONG id, flags; } request = {pin_set, 1, 1};
        alive = call(device, file, IRP_MJ_DEVICE_CONTROL, KernelMode, &request, sizeof request, &value, sizeof value);
        call(device, file, IRP_MJ_CLEANUP, KernelMode, NULL, 0, NULL, 0);
        call(device, file, IRP_MJ_CLOSE, KernelMode, NULL, 0, NULL, 0);
    }
    ExFreePoolWithTag(file, PROBE_TAG);
    ObDereferenceObject(ksalloc);
    record(registry_path, L"BadPointer", bad);
    record(registry_path, L"StillServing", alive);
    return bad == STATUS_ACCESS_VIOLATION_CODE && alive == STATUS_SUCCESS ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
}

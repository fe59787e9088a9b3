"""The NIfTI-2 header: NIfTI-1's fields widened to 64 bits, 540 bytes.

Same meaning as NIfTI-1 (see :mod:`gpuimg.headers.nifti1`) with int64 ``dim``
and ``vox_offset``, float64 voxel sizes, scaling and affines, the magic at
byte 4 and ``eol_check`` bytes that reveal end-of-line conversion damage.
Only the layout, its sizes and the check of ``eol_check`` differ, so the class
overrides nothing else.
"""

from __future__ import annotations

import numpy as np

from gpuimg.headers import checks
from gpuimg.headers.nifti1 import Nifti1Header

# fmt: off
header_dtd = [
    ('sizeof_hdr', 'i4'),       # 0; must be 540
    ('magic', 'S4'),            # 4; 'n+2\0' (single file) or 'ni2\0' (pair)
    ('eol_check', 'i1', (4,)),  # 8; must be 13, 10, 26, 10
    ('datatype', 'i2'),         # 12
    ('bitpix', 'i2'),           # 14
    ('dim', 'i8', (8,)),        # 16; dim[0] = number of dimensions
    ('intent_p1', 'f8'),        # 80
    ('intent_p2', 'f8'),        # 88
    ('intent_p3', 'f8'),        # 96
    ('pixdim', 'f8', (8,)),     # 104; pixdim[0] = qfac
    ('vox_offset', 'i8'),       # 168
    ('scl_slope', 'f8'),        # 176
    ('scl_inter', 'f8'),        # 184
    ('cal_max', 'f8'),          # 192
    ('cal_min', 'f8'),          # 200
    ('slice_duration', 'f8'),   # 208
    ('toffset', 'f8'),          # 216
    ('slice_start', 'i8'),      # 224
    ('slice_end', 'i8'),        # 232
    ('descrip', 'S80'),         # 240
    ('aux_file', 'S24'),        # 320
    ('qform_code', 'i4'),       # 344
    ('sform_code', 'i4'),       # 348
    ('quatern_b', 'f8'),        # 352
    ('quatern_c', 'f8'),        # 360
    ('quatern_d', 'f8'),        # 368
    ('qoffset_x', 'f8'),        # 376
    ('qoffset_y', 'f8'),        # 384
    ('qoffset_z', 'f8'),        # 392
    ('srow_x', 'f8', (4,)),     # 400
    ('srow_y', 'f8', (4,)),     # 432
    ('srow_z', 'f8', (4,)),     # 464
    ('slice_code', 'i4'),       # 496
    ('xyzt_units', 'i4'),       # 500
    ('intent_code', 'i4'),      # 504
    ('intent_name', 'S16'),     # 508
    ('dim_info', 'u1'),         # 524
    ('unused_str', 'S15'),      # 525
]                               # 540 bytes
# fmt: on
header_dtype = np.dtype(header_dtd)


class Nifti2Header(Nifti1Header):
    """NIfTI-2 header of a single ``.nii`` file (magic ``n+2``)."""

    template_dtype = header_dtype
    sizeof_hdr = 540
    single_magic = b"n+2"
    pair_magic = b"ni2"
    single_vox_offset = 544
    quaternion_threshold = float(np.finfo(np.float64).eps * 3)
    eol_check = (13, 10, 26, 10)
    check_battery = checks.NIFTI2
    freesurfer_shapes = False


class Nifti2PairHeader(Nifti2Header):
    """NIfTI-2 header of a ``.hdr``/``.img`` pair (magic ``ni2``)."""

    is_single = False

"""Which of nibabel's names gpuimg stands in for, and how they are put in place.

Every nibabel image-model name (image and header classes, proxies, file holders, ``load``/``save``, the
errors they raise, the ``imageglobals`` module holding the logger and error level of the header checks) is
replaced, in nibabel's modules, by the gpuimg object at the path given here, before
nibabel's test modules are imported: ``from ..nifti1 import Nifti1Image`` in a test then gets gpuimg's
class. nibabel's test helpers (``nibabel.testing``, ``volumeutils``, ``casting``...) are kept.

The lists of classes nibabel's helpers iterate over or look types up in (``all_image_classes``,
``imageclasses.KNOWN_SPATIAL_FIRST``) get gpuimg's classes in their place. A model name gpuimg does not
provide yet becomes a placeholder that fails when used, so the tests that need
it fail; a shared name (code tables) gpuimg does not provide keeps nibabel's object.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any

#: nibabel name -> dotted path of gpuimg's stand-in (the path may not exist yet: then a placeholder).
MODEL = {
    "nibabel.analyze.AnalyzeHeader": "gpuimg.analyze.AnalyzeHeader",
    "nibabel.analyze.AnalyzeImage": "gpuimg.analyze.AnalyzeImage",
    "nibabel.analyze.load": "gpuimg.analyze.load",
    "nibabel.analyze.save": "gpuimg.analyze.save",
    "nibabel.spm99analyze.SpmAnalyzeHeader": "gpuimg.headers.spm.SpmAnalyzeHeader",
    "nibabel.spm99analyze.Spm99AnalyzeHeader": "gpuimg.spm99analyze.Spm99AnalyzeHeader",
    "nibabel.spm99analyze.Spm99AnalyzeImage": "gpuimg.spm99analyze.Spm99AnalyzeImage",
    "nibabel.spm99analyze.load": "gpuimg.spm99analyze.load",
    "nibabel.spm99analyze.save": "gpuimg.spm99analyze.save",
    "nibabel.spm2analyze.Spm2AnalyzeHeader": "gpuimg.spm2analyze.Spm2AnalyzeHeader",
    "nibabel.spm2analyze.Spm2AnalyzeImage": "gpuimg.spm2analyze.Spm2AnalyzeImage",
    "nibabel.spm2analyze.load": "gpuimg.spm2analyze.load",
    "nibabel.spm2analyze.save": "gpuimg.spm2analyze.save",
    "nibabel.nifti1.NiftiExtension": "gpuimg.nifti1.NiftiExtension",
    "nibabel.nifti1.Nifti1Extension": "gpuimg.nifti1.Nifti1Extension",
    "nibabel.nifti1.Nifti1DicomExtension": "gpuimg.nifti1.Nifti1DicomExtension",
    "nibabel.nifti1.Nifti1Extensions": "gpuimg.nifti1.Nifti1Extensions",
    "nibabel.nifti1.Nifti1Header": "gpuimg.nifti1.Nifti1Header",
    "nibabel.nifti1.Nifti1PairHeader": "gpuimg.nifti1.Nifti1PairHeader",
    "nibabel.nifti1.Nifti1Image": "gpuimg.nifti1.Nifti1Image",
    "nibabel.nifti1.Nifti1Pair": "gpuimg.nifti1.Nifti1Pair",
    "nibabel.nifti1.load": "gpuimg.nifti1.load",
    "nibabel.nifti1.save": "gpuimg.nifti1.save",
    "nibabel.nifti2.Nifti2Header": "gpuimg.nifti2.Nifti2Header",
    "nibabel.nifti2.Nifti2PairHeader": "gpuimg.nifti2.Nifti2PairHeader",
    "nibabel.nifti2.Nifti2Image": "gpuimg.nifti2.Nifti2Image",
    "nibabel.nifti2.Nifti2Pair": "gpuimg.nifti2.Nifti2Pair",
    "nibabel.nifti2.load": "gpuimg.nifti2.load",
    "nibabel.nifti2.save": "gpuimg.nifti2.save",
    "nibabel.spatialimages.HeaderDataError": "gpuimg.spatialimages.HeaderDataError",
    "nibabel.spatialimages.HeaderTypeError": "gpuimg.spatialimages.HeaderTypeError",
    "nibabel.spatialimages.ImageDataError": "gpuimg.spatialimages.ImageDataError",
    "nibabel.spatialimages.SpatialHeader": "gpuimg.spatialimages.SpatialHeader",
    "nibabel.spatialimages.SpatialFirstSlicer": "gpuimg.spatialimages.SpatialFirstSlicer",
    "nibabel.spatialimages.SpatialImage": "gpuimg.spatialimages.SpatialImage",
    "nibabel.dataobj_images.DataobjImage": "gpuimg.images.dataobj.DataobjImage",
    "nibabel.filebasedimages.ImageFileError": "gpuimg.filebasedimages.ImageFileError",
    "nibabel.filebasedimages.FileBasedHeader": "gpuimg.filebasedimages.FileBasedHeader",
    "nibabel.filebasedimages.FileBasedImage": "gpuimg.filebasedimages.FileBasedImage",
    "nibabel.filebasedimages.SerializableImage": "gpuimg.filebasedimages.SerializableImage",
    "nibabel.arrayproxy.ArrayProxy": "gpuimg.arrayproxy.ArrayProxy",
    "nibabel.arrayproxy.is_proxy": "gpuimg.arrayproxy.is_proxy",
    "nibabel.arrayproxy.reshape_dataobj": "gpuimg.arrayproxy.reshape_dataobj",
    "nibabel.arrayproxy.get_obj_dtype": "gpuimg.arrayproxy.get_obj_dtype",
    "nibabel.fileholders.FileHolder": "gpuimg.images.fileholders.FileHolder",
    "nibabel.fileholders.FileHolderError": "gpuimg.errors.FileHolderError",
    "nibabel.fileholders.copy_file_map": "gpuimg.images.fileholders.copy_file_map",
    "nibabel.loadsave.load": "gpuimg.loadsave.load",
    "nibabel.loadsave.save": "gpuimg.loadsave.save",
    "nibabel.arraywriters.WriterError": "gpuimg.errors.WriterError",
    "nibabel.arraywriters.ScalingError": "gpuimg.errors.ScalingError",
    "nibabel.wrapstruct.WrapStructError": "gpuimg.errors.WrapStructError",
    # A module: tests set its logger and error_level, which the headers' check_fix must then use.
    "nibabel.imageglobals": "gpuimg.imageglobals",
}

#: Shared tables: gpuimg's object where gpuimg has one under nibabel's path, else nibabel's own.
SHARED = {
    "nibabel.nifti1.data_type_codes": "gpuimg.nifti1.data_type_codes",
    "nibabel.nifti1.xform_codes": "gpuimg.nifti1.xform_codes",
    "nibabel.nifti1.unit_codes": "gpuimg.nifti1.unit_codes",
    "nibabel.nifti1.slice_order_codes": "gpuimg.nifti1.slice_order_codes",
    "nibabel.nifti1.intent_codes": "gpuimg.nifti1.intent_codes",
    "nibabel.nifti1.extension_codes": "gpuimg.nifti1.extension_codes",
}

#: Modules whose attributes are rewritten: the defining modules and everything that re-exports their
#: names (``nibabel.Nifti1Image``, ``nibabel.spm99analyze.HeaderTypeError``...).
PATCHED_MODULES = (
    "nibabel",
    "nibabel.analyze",
    "nibabel.spm99analyze",
    "nibabel.spm2analyze",
    "nibabel.nifti1",
    "nibabel.nifti2",
    "nibabel.spatialimages",
    "nibabel.dataobj_images",
    "nibabel.filebasedimages",
    "nibabel.arrayproxy",
    "nibabel.fileholders",
    "nibabel.loadsave",
    "nibabel.arraywriters",
    "nibabel.imageclasses",
    "nibabel.wrapstruct",
)


def resolve(dotted: str) -> Any:
    """The object at ``dotted`` (a module path, then attributes); raises LookupError when absent."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:]:
                obj = getattr(obj, name)
        except AttributeError:
            break
        return obj
    raise LookupError(f"gpuimg has no {dotted}")


def placeholder(nibabel_name: str, original: Any, gpuimg_path: str) -> Any:
    """A stand-in for a nibabel name gpuimg lacks: it fails, naming what is missing, when used."""
    message = f"gpuimg has no stand-in for {nibabel_name} (looked for {gpuimg_path})"
    short = nibabel_name.rsplit(".", 1)[1]
    if inspect.isclass(original) and issubclass(original, BaseException):
        return type(short, (Exception,), {"__doc__": message})
    if inspect.isclass(original):

        def refuse(cls, *args, **kwargs):
            raise NotImplementedError(message)

        return type(short, (), {"__doc__": message, "__new__": refuse})

    def missing(*args, **kwargs):
        raise NotImplementedError(message)

    missing.__name__ = missing.__qualname__ = short
    return missing


def stand_ins() -> tuple[dict[int, Any], list[str]]:
    """``{id(nibabel object): gpuimg object}`` and the nibabel names given placeholders."""
    by_id: dict[int, Any] = {}
    missing = []
    for table, shared in ((MODEL, False), (SHARED, True)):
        for nibabel_name, gpuimg_path in table.items():
            original = resolve(nibabel_name)
            try:
                by_id[id(original)] = resolve(gpuimg_path)
            except LookupError:
                if not shared:
                    by_id[id(original)] = placeholder(nibabel_name, original, gpuimg_path)
                    missing.append(nibabel_name)
    return by_id, missing


def install() -> list[str]:
    """Put gpuimg's stand-ins in place in nibabel's modules; return the nibabel names still missing.

    Must run before nibabel's test modules are imported (their ``from .. import`` lines bind names once).
    """
    by_id, missing = stand_ins()
    for module_name in PATCHED_MODULES:
        module = importlib.import_module(module_name)
        for name, value in list(vars(module).items()):
            if id(value) in by_id:
                setattr(module, name, by_id[id(value)])
    # nibabel's list of image classes, with gpuimg's classes standing in and the formats gpuimg does not
    # implement left out (tests iterate over it to convert between every pair of classes).
    nibabel = sys.modules["nibabel"]
    gpuimg_classes = [by_id[id(c)] for c in nibabel.all_image_classes if id(c) in by_id]
    for module_name in ("nibabel", "nibabel.imageclasses", "nibabel.loadsave"):
        sys.modules[module_name].all_image_classes = gpuimg_classes
    # The classes known to put spatial axes first (nibabel's spatial_axes_first looks the image's type
    # up there; a 4D image of a class not in it has no img.slicer).
    imageclasses = sys.modules["nibabel.imageclasses"]
    imageclasses.KNOWN_SPATIAL_FIRST = tuple(
        by_id[id(c)] for c in imageclasses.KNOWN_SPATIAL_FIRST if id(c) in by_id
    )
    return missing

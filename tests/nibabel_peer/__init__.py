"""The peer suite: nibabel's own test modules run with gpuimg standing in for nibabel's image model.

See ``docs/nibabel-peer-suite.md``. :mod:`nibabel_peer.substitutes` says which nibabel names gpuimg stands
in for, :mod:`nibabel_peer.plugin` installs them into a pytest run of nibabel's installed test modules, and
:mod:`nibabel_peer.suite` runs that pytest (with gpuimg, and with nibabel itself as the baseline) and
compares the outcomes with the list of expected differences in ``expected.txt``.
"""

"""Only here to hand the cffi build script to setuptools; metadata is in pyproject.toml."""

from setuptools import setup

# cffi compiles the module against the stable ABI (Py_LIMITED_API; the file is
# _native_cffi.abi3.so): tag the wheel so, one wheel for CPython >= 3.10.
setup(
    cffi_modules=["native/build_native.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)

"""Extension modules compiled from kernels/*.pyx by the package build (CMake + Cython)."""

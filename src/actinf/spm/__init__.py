"""SPM12 compatibility: reading and writing SPM reference cases (see ``actinf.spm.io``)."""

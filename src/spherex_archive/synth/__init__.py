"""The synthetic QR2 release: files that code written for the real SPHEREx products reads
unchanged, with injected sources of known spectra (see ``release.synthesise``)."""

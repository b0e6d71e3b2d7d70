"""Official-layout readers, the image store, samplers and the built-in synthvi dataset."""

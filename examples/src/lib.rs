//! Runnable examples of the Portcullis layers; see the `examples/` folder of this package.

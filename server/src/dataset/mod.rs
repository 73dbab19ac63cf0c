//! Datasets in and out: importing labelled images ([`import`]: image
//! folders, FER2013 CSV), exporting the crowd's labels ([`export`]: JSONL
//! with soft labels, FER2013 CSV, ImageFolder, and its import), truth
//! inference on label files from anywhere ([`aggregate`]), and the
//! deterministic synthetic faces of the demo pool ([`demo_faces`]).

pub mod aggregate;
pub mod demo_faces;
pub mod export;
pub mod import;

//! Compiles `proto/plumb/v1/*.proto` into Rust with tonic-prost-build (needs `protoc` on PATH).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .type_attribute(
            ".plumb.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .message_attribute(".plumb.v1", "#[serde(default)]")
        .compile_protos(&["proto/plumb/v1/query.proto"], &["proto"])?;
    Ok(())
}

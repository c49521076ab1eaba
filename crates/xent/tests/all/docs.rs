//! What the README shows is what runs: its GPU-form quick start is `examples/pipeline.rs`,
//! character for character (the README's blocks also compile and run as doctests).

#[test]
fn the_readme_shows_the_pipeline_example_as_it_is() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../../examples/pipeline.rs");
    let code: String = example
        .lines()
        .filter(|line| !line.starts_with("//!"))
        .skip_while(|line| line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        readme.contains(&format!("```rust\n{code}```")),
        "README.md's GPU-form block differs from examples/pipeline.rs; copy the example (without its //! header) into it"
    );
}

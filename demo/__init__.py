"""Demo-side helpers: rendering ARKit curves to images and videos for the Gradio app."""

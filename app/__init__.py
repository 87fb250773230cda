"""RAFT Judge Studio: the Gradio app over the raft library."""

"""The image detector and the family classifier: face crops and self-blends (data, synth), net,
training, export, command."""

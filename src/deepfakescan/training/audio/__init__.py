"""The audio detector: corpus and fakes (data, synth, augment), net, training, export, command."""

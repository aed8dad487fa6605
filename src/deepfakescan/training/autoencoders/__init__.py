"""Small autoencoders whose reconstructions of our real photos are fakes for ``image-synthetic``.

Same content, only the decoder's fingerprint differs (AutoGAN, Zhang et al. 2019; aligned
pairs, Rajan et al. 2025): ``data.py`` (manifests, images, patches), ``nets.py`` (the decoders
generators use: transposed convolution, nearest / bilinear + conv, pixel shuffle, an SD-style
VAE), ``train.py`` (the shared resumable loop), ``reconstruct.py`` (the fakes and their
manifest), ``command.py`` (``deepfakescan train autoencoders``).
"""

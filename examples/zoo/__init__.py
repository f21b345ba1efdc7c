"""Model definitions benchmarked by the example performance suites.

Import the submodules directly (``examples.zoo.resnet``, ``examples.zoo.bert``,
``examples.zoo.keras_models``, ``examples.zoo.preprocessing``); this package imports no
framework so that collecting a suite stays cheap.
"""

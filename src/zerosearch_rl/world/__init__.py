"""The tiny synthetic world of the demo: a seeded fictional world in two eras, its corpus, questions,
word-level tokenizer and tiny pretrained models (``zerosearch world build|pretrain``)."""

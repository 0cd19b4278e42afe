/// The suite's words, in place of RULER's wonderwords lists: short, common English words that
/// every tokenizer here (a Shakespeare BPE, a 512-piece TinyStories vocabulary) spells in a few
/// pieces. Needle keys and values are adjective-noun pairs as in RULER; common-words lists draw
/// from all three lists.
enum SuiteVocabulary {
    static let nouns = """
        apple arrow baker basket bell bird blanket boat bone book bottle bread bridge brush bucket butter button cake \
        candle castle chair cheese cloud coat corn cow crown cup deer desk door dragon drum duck eagle egg feather fence \
        field fish flag flower forest fox frog garden gate giant glove goat gold grape hammer hat hill honey horse house \
        island jacket jar kettle key king kite ladder lake lamp leaf lemon lion map meadow mirror monkey moon mountain \
        mouse nest oak ocean owl pail palace pear pencil pepper piano pillow pine planet pond pony queen rabbit river \
        road robin rock rose sail salt sheep shell ship shoe silver sled snail snow spoon star stone sugar sun swan \
        table tent tiger tower train tree turtle valley wagon wall whale wheel window wolf
        """.split(separator: " ").map(String.init)

    static let adjectives = """
        ancient angry big bitter blue brave bright broken calm cheerful clever cold crooked curious dark deep dry eager \
        early empty fancy fast fierce gentle giant glad golden green happy heavy hidden hollow honest huge humble icy \
        kind late lazy little lonely loud lucky merry noble old orange pale plain proud purple quick quiet rapid red \
        rich round rusty sad sharp shiny short silent simple sleepy slow small smooth soft sour strange strong sweet \
        tall tender tiny warm weak wet white wild wise yellow young
        """.split(separator: " ").map(String.init)

    static let verbs = """
        bake build carry catch climb cook dance dig draw dream drink drive eat fall feed find fly fold grow help hide \
        hop hug jump kick knock laugh learn lift listen look march mend move open paint pick plant play pour pull push \
        read ride ring run sail shout sing sit skip sleep smile speak swim talk throw walk wash wave whistle write
        """.split(separator: " ").map(String.init)

    /// First names tiny story models are trained on, for `names` needles.
    static let names = """
        Lily Tom Ben Mia Max Sue Tim Sam Anna Jack Lucy Bob Spot Kitty Molly Jake Emma Leo Zoe Daisy Buddy Rex Amy Joe
        """.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)

    /// Every distinct word, for common-words lists.
    static let words = Array(Set(nouns + adjectives + verbs)).sorted()
}

"""Multilingual cue lexicon: phrase lists per cue class and language, plus the rules that combine them.

Data, not code.  :mod:`distillguard.features.text` tokenizes every phrase with the
same tokenizer it applies to prompts (lowercase; punctuation and spacing are
ignored, so "step-by-step" == "step by step"; every CJK / kana / hangul / Thai
character is its own token, so phrases in those scripts match inside longer
words) and matches them as exact token sequences.  Words in space-delimited
languages are NOT stemmed: list the inflected forms a prompt would use.

``{a|b|}`` expands to alternatives ("explain {your|the} reasoning" -> 2
phrases; an empty alternative makes a word optional).

Cue classes are named ``family.role``.  :data:`RULES` turns class occurrences
into per-prompt flags: each flag is an OR of clauses, a clause an AND of terms,
a term ``"cls"`` (occurs), ``"!cls"`` (does not occur), ``("near", a, b, w)``
(a phrase of ``a`` starts within ``w`` tokens of one of ``b``) or
``("!near", a, b, w)``.

:data:`EXAMPLES` holds positive and negative prompts per flag and language;
``tests/features/test_lexicon.py`` runs them all.

Example:
    >>> expand("show {your|the} {reasoning|work}")[:2]
    ['show your reasoning', 'show your work']
"""

from __future__ import annotations

import itertools
import re

__all__ = ["CUES", "RULES", "EXAMPLES", "CAPABILITY_WEIGHTS", "expand", "expand_all"]

_BRACES = re.compile(r"\{([^{}]*)\}")


def expand(phrase: str) -> list[str]:
    """All phrases a ``{a|b}`` pattern stands for, whitespace-normalized.

    Example:
        >>> expand("think {|carefully }step by step")
        ['think step by step', 'think carefully step by step']
    """
    parts = _BRACES.split(phrase)
    # split() alternates literal text and brace contents
    options = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    return [" ".join("".join(combo).split()) for combo in itertools.product(*options)]


def expand_all(items: list[str]) -> list[str]:
    """Expand every pattern of a list, keeping order and dropping duplicates."""
    out: dict[str, None] = {}
    for item in items:
        for p in expand(item):
            if p:
                out[p] = None
    return list(out)


_N = "{1|2|3|4|5|6|7|8|9}"  # numbers are tokens like any word

# --------------------------------------------------------------------------------------------------
# Cue classes.  Reasoning elicitation ("reason.*"): the prompt asks the model to expose its own
# reasoning.  Families of cues:
#   strong     - enough on its own: named reasoning artefacts (chain of thought, thought process,
#                reasoning trace, inner monologue, scratchpad), "think step by step", "show your work".
#   expose     - verbs of exposing: show / explain / articulate / write out / verbalize / walk through.
#   thought    - nouns of the thinking itself: reasoning, thinking, logic, rationale, derivation.
#   self       - whose thinking / about what: you / your, the answer / response / solution.
#   stepwise   - step-by-step markers.
#   solve      - verbs of solving or thinking that a step-by-step marker turns into a derivation.
#   procedural - how-to objects that make "step by step" benign (recipes, instructions, installs).
#   negate     - "don't explain", "just the answer".
# --------------------------------------------------------------------------------------------------

CUES: dict[str, dict[str, list[str]]] = {
    "reason.strong": {
        "en": [
            "chain of thought", "chain of thoughts", "chain of reasoning", "cot reasoning",
            "{think|reason|work|go} {|through this |through it |carefully |it out }step by step",
            "let s think", "lets think", "let us think", "let s reason", "let s work this out",
            "think {aloud|out loud}", "thinking out loud", "{thought|thinking|reasoning} process",
            "{thought|thinking|reasoning} processes", "reasoning {trace|traces|chain|steps|path}",
            "{internal|inner|hidden|private|intermediate} {reasoning|thoughts|thinking|monologue}",
            "scratchpad", "scratch pad", "show {your|all your|all of your|the} {work|working|workings|reasoning|thinking}",
            "{explain|justify|describe|articulate} your {reasoning|thinking|logic|answer|rationale}",
            "step by step {reasoning|derivation|solution|explanation of your|rationale|thinking}",
            "{reason|think} before {answering|you answer|responding|giving the answer}",
            "{think|reason} {carefully |}{first|before} {answering|you answer|responding}",
            "how you {arrived|arrive|got|came|reached|reach} {at|to}", "how you d {arrive|get} at",
            "how you would {arrive|get} at", "{reasoning|thinking|logic|rationale} behind {this|the|your|that|a|each} {answer|response|solution|completion|output|conclusion|result|decision|completed}",
            "verbalize your", "think through", "thought by thought",
        ],
        "zh": [
            "思维链", "思考链", "推理链", "思考过程", "推理过程", "思维过程", "思考步骤", "推理步骤",
            "解题过程", "解题步骤", "解题思路", "演算过程", "计算过程", "推导过程", "逐步思考", "一步一步思考",
            "一步一步地思考", "一步步思考", "一步步地思考", "逐步推理", "分步推理", "一步一步推理", "内心独白",
            "你的推理", "你的思路", "你的思考", "您的推理", "您的思路", "先思考", "思考后再回答", "展示推理",
            "写出推理", "详细推理", "中间步骤",
        ],
        "ja": [
            "思考過程", "推論過程", "思考プロセス", "推論プロセス", "思考の過程", "推論の過程", "思考の流れ",
            "段階的に考え", "ステップバイステップで考え", "順を追って考え", "一歩ずつ考え", "声に出して考え",
            "思考の連鎖", "あなたの推論", "あなたの考え方", "考え方を説明", "解き方を説明", "途中式", "計算過程",
            "推論を示", "推論を説明", "考えを説明",
        ],
        "ko": [
            "사고 과정", "추론 과정", "생각 과정", "풀이 과정", "사고의 흐름", "생각의 흐름", "추론 단계",
            "단계별로 생각", "단계적으로 생각", "차근차근 생각", "한 단계씩 생각", "당신의 추론", "너의 추론",
            "추론을 보여", "추론을 설명", "사고 사슬", "생각의 사슬",
        ],
        "ru": [
            "цепочка рассуждений", "цепочку рассуждений", "цепочка мыслей", "цепочку мыслей",
            "ход {рассуждений|мыслей|мысли|решения|своих мыслей|своих рассуждений}",
            "{процесс|процессе} {рассуждения|рассуждений|мышления}",
            "{думай|думайте|рассуждай|рассуждайте|размышляй|размышляйте} вслух",
            "{подумай|подумайте|рассуждай|рассуждайте|думай|думайте|реши|решите} шаг за шагом",
            "{свои|твои|ваши} {рассуждения|размышления|мысли}", "внутренний монолог", "пошаговое {решение|рассуждение}",
            "покажи{|те} {решение|рассуждения|ход}", "объясни{|те} {своё|свое|твоё|твое|ваше} {решение|рассуждение}",
        ],
        "es": [
            "cadena de {pensamiento|pensamientos|razonamiento}",
            "{piensa|piense|razona|razone|resuelve|resuélvelo|resuelvelo|pensemos|razonemos} paso a paso",
            "{piensa|piense|pensar} en voz alta", "proceso de {pensamiento|razonamiento}", "{tu|su} razonamiento",
            "{muestra|muestre} tu trabajo", "razonamiento {interno|paso a paso}", "monólogo interno",
            "{explica|explique} {tu|su} {razonamiento|respuesta|lógica}",
        ],
        "fr": [
            "chaîne de {pensée|pensées|raisonnement}",
            "{réfléchis|réfléchissez|raisonne|raisonnez|pense|pensez|résous|résolvez} étape par étape",
            "{réfléchis|réfléchissez|raisonne|raisonnez} pas à pas",
            "{pense|pensez|réfléchis|réfléchissez} à voix haute", "processus de {réflexion|raisonnement|pensée}",
            "{ton|votre} raisonnement", "monologue intérieur", "raisonnement {interne|étape par étape}",
            "{montre|montrez} {ton|votre} travail", "{explique|expliquez} {ton|votre} {raisonnement|réponse|démarche}",
        ],
        "de": [
            "gedankenkette", "{denke|denk|denken sie|überlege|überlegen sie|löse|lösen sie} schritt für schritt",
            "laut denken", "{denke|denk|denken sie} laut", "denkprozess", "gedankengang", "gedankengänge",
            "lösungsweg", "rechenweg", "denkweg", "{deinen|ihren|deine|ihre} {gedankengang|überlegungen|denkprozess}",
            "innerer monolog", "{begründe|begründen sie} {deine|ihre} antwort",
            "schritt für schritt {begründung|herleitung|lösung}",
        ],
        "pt": [
            "cadeia de {pensamento|pensamentos|raciocínio}",
            "{pense|pensa|raciocine|raciocina|resolva|resolve} passo a passo", "{pense|pensar} em voz alta",
            "processo de {pensamento|raciocínio}", "{seu|teu} raciocínio", "raciocínio {interno|passo a passo}",
            "monólogo interno", "{mostre|mostra} {seu|teu} trabalho", "{explique|explica} {seu|teu} raciocínio",
        ],
        "it": [
            "catena di {pensiero|pensieri|ragionamento}",
            "{pensa|ragiona|risolvi|pensiamo|ragioniamo} {passo dopo passo|passo passo|un passo alla volta}",
            "{pensa|pensare|ragiona} ad alta voce", "processo di {pensiero|ragionamento}",
            "{il tuo|il suo|tuo} ragionamento", "ragionamento {interno|passo dopo passo}", "monologo interiore",
            "{mostra|mostrami} il tuo lavoro", "{spiega|spieghi} il {tuo|suo} ragionamento",
        ],
        "ar": [
            "سلسلة الأفكار", "سلسلة الافكار", "سلسلة التفكير", "سلسلة الاستدلال", "{فكر|فكّر|فكروا} خطوة بخطوة",
            "خطوات التفكير", "عملية التفكير", "عملية الاستدلال", "طريقة تفكيرك", "{فكر|فكّر} بصوت عال",
            "{فكر|فكّر} بصوت عالٍ", "اشرح تفكيرك", "اشرح استدلالك", "اشرح منطقك", "حل خطوة بخطوة",
        ],
        "hi": [
            "{चरण दर चरण|कदम दर कदम|क़दम दर क़दम|चरणबद्ध तरीके से} {सोचें|सोचिए|सोचो|हल करें|हल कीजिए|तर्क करें}",
            "सोचने की प्रक्रिया", "विचार प्रक्रिया", "तर्क प्रक्रिया", "{अपनी|आपकी} सोच", "{अपना|आपका} तर्क",
            "{अपने|आपके} तर्क", "तर्क की श्रृंखला", "विचारों की श्रृंखला", "{ज़ोर|जोर} से {सोचें|सोचिए|सोचो}",
        ],
        "vi": [
            "{suy nghĩ|lập luận|suy luận|giải} từng bước", "chuỗi {suy nghĩ|suy luận|lập luận}",
            "quá trình {suy nghĩ|suy luận|lập luận|tư duy}", "cách bạn {suy nghĩ|lập luận|suy luận}",
            "{lập luận|suy luận|suy nghĩ} của bạn", "suy nghĩ thành tiếng", "trình bày lời giải",
        ],
        "tr": [
            "adım adım {düşün|düşünün|akıl yürüt|akıl yürütün|çöz|çözün}", "düşünce zinciri",
            "düşünce {süreci|sürecini|sürecinizi|sürecin}", "akıl yürütme {süreci|sürecini|adımları}",
            "{akıl yürütmeni|akıl yürütmenizi}", "sesli düşün", "iç monolog", "çözüm adımlarını göster",
        ],
        "id": [
            "{berpikir|pikirkan|bernalar|selesaikan} langkah demi langkah", "rantai {pemikiran|penalaran}",
            "proses {berpikir|penalaran|pemikiran}", "{penalaranmu|pemikiranmu|penalaran anda|pemikiran anda|penalaran kamu}",
            "berpikir dengan suara keras", "tunjukkan {pekerjaanmu|cara kerjamu|langkah langkahmu}",
        ],
        "pl": [
            "{pomyśl|myśl|rozumuj|rozwiąż|przemyśl} krok po kroku", "łańcuch {myśli|rozumowania}",
            "tok {rozumowania|myślenia}", "proces {myślowy|myślenia|rozumowania}",
            "{swoje|twoje|pana|pani} rozumowanie", "myśl na głos", "wewnętrzny monolog",
            "pokaż {swoje|twoje} {rozumowanie|obliczenia}", "{wyjaśnij|uzasadnij} {swoje|twoje} rozumowanie",
        ],
        "nl": [
            "{denk|redeneer|los} stap voor stap", "stap voor stap {denken|redeneren}", "gedachtegang",
            "denkproces", "redeneerproces", "redeneringsproces", "{je|jouw|uw} redenering", "hardop denken",
            "denk hardop", "keten van gedachten", "innerlijke monoloog", "toon je werk", "laat je berekening zien",
        ],
    },
    "reason.expose": {
        "en": [
            "show", "explain", "articulate", "write out", "write down", "spell out", "verbalize", "verbalise",
            "describe", "walk me through", "walk through", "lay out", "outline", "reveal", "detail", "narrate",
            "reconstruct", "include", "provide", "give", "output", "document", "expose", "demonstrate", "justify",
            "write", "display", "present",
        ],
        "zh": ["展示", "写出", "说明", "解释", "阐述", "列出", "给出", "描述", "呈现", "重建", "还原", "输出"],
        "ja": ["説明", "示し", "示せ", "書き出", "書いて", "見せて", "述べ", "記述", "再構成", "言語化", "出力"],
        "ko": ["설명", "보여", "작성", "써", "서술", "밝혀", "제시"],
        "ru": ["объясни", "объясните", "покажи", "покажите", "опиши", "опишите", "распиши", "распишите",
               "изложи", "изложите", "напиши", "напишите", "приведи", "приведите", "восстанови", "восстановите",
               "сформулируй", "выведи"],
        "es": ["explica", "explique", "explícame", "muestra", "muestre", "muéstrame", "describe", "detalla",
               "escribe", "articula", "expón", "reconstruye", "verbaliza", "incluye"],
        "fr": ["explique", "expliquez", "montre", "montrez", "décris", "décrivez", "détaille", "détaillez",
               "écris", "écrivez", "rédige", "rédigez", "expose", "exposez", "reconstruis", "reconstituez", "inclus"],
        "de": ["erkläre", "erklären", "erklär", "zeige", "zeigen", "zeig", "beschreibe", "beschreiben",
               "schreibe", "schreib", "lege", "darlegen", "formuliere", "rekonstruiere", "begründe", "begründen"],
        "pt": ["explique", "explica", "mostre", "mostra", "descreva", "detalhe", "escreva", "articule", "exponha",
               "reconstrua"],
        "it": ["spiega", "spieghi", "mostra", "mostri", "descrivi", "descriva", "dettaglia", "scrivi", "scriva",
               "esponi", "ricostruisci", "articola"],
        "ar": ["اشرح", "وضح", "وضّح", "أوضح", "اعرض", "بيّن", "بين", "اكتب", "صف", "أظهر", "اظهر"],
        "hi": ["समझाइए", "समझाओ", "समझाएं", "समझाएँ", "बताइए", "बताओ", "बताएं", "दिखाइए", "दिखाओ", "दिखाएं",
               "लिखिए", "लिखो", "लिखें", "स्पष्ट करें"],
        "vi": ["giải thích", "trình bày", "cho thấy", "thể hiện", "viết ra", "mô tả", "nêu"],
        "tr": ["açıkla", "açıklayın", "göster", "gösterin", "yaz", "yazın", "anlat", "anlatın", "belirt"],
        "id": ["jelaskan", "tunjukkan", "tuliskan", "uraikan", "paparkan", "gambarkan", "jabarkan"],
        "pl": ["wyjaśnij", "pokaż", "opisz", "przedstaw", "napisz", "rozpisz", "uzasadnij", "zrekonstruuj"],
        "nl": ["leg uit", "leg", "uitleggen", "toon", "laat zien", "beschrijf", "schrijf", "licht toe", "reconstrueer"],
    },
    "reason.thought": {
        "en": ["reasoning", "thinking", "thought process", "thoughts", "logic", "rationale", "derivation",
               "steps", "work", "working", "workings", "justification", "deliberation", "train of thought",
               "intermediate steps", "each step", "every step", "all steps", "all the steps"],
        "zh": ["推理", "思考", "思路", "思维", "过程", "步骤", "推导", "逻辑", "依据"],
        "ja": ["推論", "思考", "考え", "過程", "プロセス", "根拠", "論理", "途中"],
        "ko": ["추론", "사고", "생각", "과정", "논리", "근거", "풀이"],
        "ru": ["рассуждение", "рассуждения", "рассуждений", "мысли", "мышление", "мышления", "логику", "логика",
               "размышления", "обоснование", "решение", "ход"],
        "es": ["razonamiento", "pensamiento", "lógica", "proceso", "pasos", "trabajo"],
        "fr": ["raisonnement", "réflexion", "pensée", "logique", "démarche", "cheminement", "étapes"],
        "de": ["überlegungen", "überlegung", "denken", "begründung", "logik", "argumentation", "gedankengang",
               "schritte"],
        "pt": ["raciocínio", "pensamento", "lógica", "processo", "passos", "trabalho"],
        "it": ["ragionamento", "pensiero", "logica", "processo", "passaggi"],
        "ar": ["تفكير", "التفكير", "تفكيرك", "الاستدلال", "استدلالك", "المنطق", "منطقك", "خطوات", "الخطوات"],
        "hi": ["तर्क", "सोच", "विचार", "प्रक्रिया", "चरण"],
        "vi": ["suy nghĩ", "suy luận", "lập luận", "lý luận", "tư duy", "quá trình", "các bước"],
        "tr": ["akıl yürütme", "akıl yürütmeni", "düşünce", "mantık", "mantığını", "süreç", "adımları"],
        "id": ["penalaran", "pemikiran", "berpikir", "logika", "proses", "langkah langkah", "langkah"],
        "pl": ["rozumowanie", "rozumowania", "myślenie", "myśli", "tok", "logika", "uzasadnienie", "kroki"],
        "nl": ["redenering", "denken", "gedachten", "logica", "proces", "stappen"],
    },
    "reason.self": {
        "en": ["you", "your", "yourself", "you re", "you ve", "you d", "answer", "response", "solution",
               "completion", "conclusion", "result", "output", "verdict"],
        "zh": ["你", "您", "答案", "回答", "回复", "结论", "结果"],
        "ja": ["あなた", "君", "答え", "回答", "解答", "結論"],
        "ko": ["당신", "너", "답", "답변", "결론"],
        "ru": ["свои", "свой", "своё", "свое", "свою", "твои", "твой", "твоё", "твое", "твою", "ваши", "ваш",
               "ваше", "вашу", "ответ", "ответа", "ответу", "решение", "вывод"],
        "es": ["tu", "tus", "su", "sus", "respuesta", "solución", "conclusión", "resultado"],
        "fr": ["ton", "ta", "tes", "votre", "vos", "réponse", "solution", "conclusion", "résultat"],
        "de": ["dein", "deine", "deinen", "deiner", "ihr", "ihre", "ihren", "antwort", "lösung", "ergebnis"],
        "pt": ["seu", "sua", "seus", "suas", "teu", "tua", "resposta", "solução", "conclusão"],
        "it": ["tuo", "tua", "tuoi", "suo", "sua", "risposta", "soluzione", "conclusione"],
        "ar": ["تفكيرك", "إجابتك", "اجابتك", "الإجابة", "الاجابة", "الحل", "حلك", "منطقك", "استدلالك"],
        "hi": ["अपना", "अपनी", "अपने", "आपका", "आपकी", "आपके", "तुम्हारा", "उत्तर", "जवाब", "हल"],
        "vi": ["bạn", "của bạn", "câu trả lời", "đáp án", "lời giải", "kết luận"],
        "tr": ["senin", "sizin", "cevabını", "cevabınızı", "cevap", "yanıt", "çözüm", "mantığını"],
        "id": ["kamu", "anda", "jawaban", "jawabanmu", "solusi", "kesimpulan"],
        "pl": ["swoje", "swój", "twoje", "twój", "twoją", "pana", "pani", "odpowiedź", "odpowiedzi", "rozwiązanie"],
        "nl": ["je", "jouw", "uw", "antwoord", "oplossing", "conclusie"],
    },
    "reason.stepwise": {
        "en": ["step by step", "stepwise", "one step at a time", "each step", "every step", "step 1",
               "all intermediate steps", "in steps"],
        "zh": ["一步一步", "一步步", "逐步", "分步", "循序渐进", "每一步", "每个步骤"],
        "ja": ["ステップバイステップ", "段階的", "一歩ずつ", "順を追って", "順番に", "各ステップ"],
        "ko": ["단계별", "단계적", "차근차근", "한 단계씩", "각 단계"],
        "ru": ["шаг за шагом", "пошагово", "пошаговое", "пошаговый", "поэтапно", "по шагам", "каждый шаг"],
        "es": ["paso a paso", "pasos intermedios", "cada paso"],
        "fr": ["étape par étape", "pas à pas", "chaque étape"],
        "de": ["schritt für schritt", "schrittweise", "jeden schritt", "jeder schritt"],
        "pt": ["passo a passo", "cada passo", "etapa por etapa"],
        "it": ["passo dopo passo", "passo passo", "un passo alla volta", "ogni passaggio"],
        "ar": ["خطوة بخطوة", "خطوة خطوة"],
        "hi": ["चरण दर चरण", "कदम दर कदम", "क़दम दर क़दम", "चरणबद्ध", "क्रमशः"],
        "vi": ["từng bước", "từng bước một", "theo từng bước"],
        "tr": ["adım adım", "aşama aşama"],
        "id": ["langkah demi langkah", "langkah per langkah", "selangkah demi selangkah", "tahap demi tahap"],
        "pl": ["krok po kroku", "etapami"],
        "nl": ["stap voor stap", "stapsgewijs", "elke stap"],
    },
    "reason.solve": {
        "en": ["solve", "calculate", "compute", "derive", "prove", "determine", "figure out", "work out", "think",
               "reason", "answer", "deduce", "evaluate", "find", "reasoning", "thinking"],
        "zh": ["求解", "解答", "计算", "证明", "推导", "思考", "推理", "解决", "回答", "解题", "分析"],
        "ja": ["解いて", "解け", "解き", "計算", "証明", "考えて", "考え", "求め", "推論"],
        "ko": ["풀어", "풀이", "계산", "증명", "생각해", "추론", "구하"],
        "ru": ["реши", "решите", "вычисли", "вычислите", "докажи", "докажите", "подумай", "подумайте",
               "рассуждай", "рассуждайте", "найди", "найдите", "рассуждая"],
        "es": ["resuelve", "resuelva", "calcula", "calcule", "demuestra", "piensa", "piense", "razona", "razone"],
        "fr": ["résous", "résolvez", "calcule", "calculez", "démontre", "démontrez", "réfléchis", "réfléchissez",
               "raisonne", "raisonnez"],
        "de": ["löse", "lösen", "berechne", "berechnen", "beweise", "beweisen", "denke", "denk", "überlege", "überlegen"],
        "pt": ["resolva", "resolve", "calcule", "demonstre", "pense", "raciocine"],
        "it": ["risolvi", "risolva", "calcola", "calcoli", "dimostra", "pensa", "ragiona"],
        "ar": ["حل", "احسب", "أثبت", "اثبت", "فكر", "فكّر"],
        "hi": ["हल", "गणना", "सिद्ध", "सोचिए", "सोचो", "सोचें"],
        "vi": ["giải", "tính", "chứng minh", "suy nghĩ", "suy luận"],
        "tr": ["çöz", "çözün", "hesapla", "hesaplayın", "kanıtla", "düşün", "düşünün"],
        "id": ["selesaikan", "hitung", "buktikan", "pikirkan", "berpikir"],
        "pl": ["rozwiąż", "oblicz", "udowodnij", "pomyśl", "przemyśl", "rozumuj"],
        "nl": ["los op", "bereken", "bewijs", "denk", "redeneer"],
    },
    "reason.procedural": {
        "en": ["instructions", "instruction", "recipe", "guide", "tutorial", "how to", "install", "installing",
               "set up", "setup", "bake", "cook", "build", "assemble", "configure", "directions", "walkthrough",
               "steps to", "manual", "troubleshoot", "fix my", "learn"],
        "zh": ["教程", "食谱", "菜谱", "做法", "安装", "怎么做", "如何制作", "指南", "说明书", "配置", "步骤指导"],
        "ja": ["レシピ", "作り方", "インストール", "設定方法", "手順書", "ガイド", "やり方"],
        "ko": ["레시피", "만드는 법", "만드는 방법", "설치", "설정 방법", "가이드"],
        "ru": ["рецепт", "инструкция", "инструкцию", "руководство", "установить", "установка", "настроить",
               "приготовить"],
        "es": ["receta", "instrucciones", "guía", "tutorial", "instalar", "configurar", "cómo hacer", "preparar"],
        "fr": ["recette", "instructions", "guide", "tutoriel", "installer", "configurer", "comment faire", "préparer"],
        "de": ["rezept", "anleitung", "installieren", "einrichten", "konfigurieren", "wie man"],
        "pt": ["receita", "instruções", "guia", "tutorial", "instalar", "configurar", "como fazer"],
        "it": ["ricetta", "istruzioni", "guida", "tutorial", "installare", "configurare", "come fare"],
        "ar": ["وصفة", "تعليمات", "دليل", "تثبيت", "طريقة عمل"],
        "hi": ["रेसिपी", "विधि", "निर्देश", "इंस्टॉल", "गाइड"],
        "vi": ["công thức nấu", "hướng dẫn", "cài đặt", "cách làm", "cách nấu"],
        "tr": ["tarif", "tarifi", "talimat", "kurulum", "nasıl yapılır", "rehber"],
        "id": ["resep", "petunjuk", "panduan", "tutorial", "instal", "cara membuat", "cara memasak"],
        "pl": ["przepis", "instrukcja", "instrukcję", "poradnik", "zainstalować", "skonfigurować", "jak zrobić"],
        "nl": ["recept", "handleiding", "instructies", "installeren", "configureren", "hoe maak"],
    },
    "reason.negate": {
        "en": ["don t", "do not", "dont", "without", "no need to", "never", "skip", "only the final answer",
               "just the answer", "only the answer", "no explanation"],
        "zh": ["不要", "不用", "无需", "只需", "只给"],
        "ja": ["しないで", "不要", "答えだけ"],
        "ko": ["하지 마", "없이", "답만"],
        "ru": ["не", "без", "только ответ"],
        "es": ["no", "sin", "solo la respuesta"],
        "fr": ["ne", "pas", "sans", "seulement la réponse"],
        "de": ["nicht", "ohne", "nur die antwort"],
        "pt": ["não", "sem", "apenas a resposta"],
        "it": ["non", "senza", "solo la risposta"],
    },
    # ---------------------------------------------------------------------------------------------
    # Rubric grading ("grade.*"): the model is used as a judge / reward model.
    #   strong   - enough alone (judge personas, reward model, rubric nouns tied to responses).
    #   verb     - grade / score / rate / evaluate / compare.
    #   object   - what is graded: a response / answer / output / completion / submission.
    #   scale    - the rubric or scale: "on a scale of 1 to 10", "out of 10", criteria, verdicts.
    #   pair_a / pair_b - "Response A" ... "Response B" (both needed: pairwise preference).
    # ---------------------------------------------------------------------------------------------
    "grade.strong": {
        "en": [
            "{act|acting|serve} as {an impartial|a fair|an expert|an objective|a strict|the|a} {judge|grader|evaluator}",
            "you are {an impartial|a fair|an expert|an objective|a strict|a|the} {judge|grader|evaluator}",
            "llm as a judge", "llm as judge", "reward model", "preference model",
            "{grading|scoring|evaluation|marking} rubric", "{rate|score|grade|judge|evaluate} the {response|responses|answer|answers|output|outputs|completion|completions|assistant s answer}",
            "which {response|answer|output|completion|reply} is better", "which of the two {responses|answers|outputs|completions}",
            "better response", "{preferred|better} {answer|output|completion}", "pairwise comparison",
            "{rating|score|verdict} in double brackets",
        ],
        "zh": ["评分标准", "打分标准", "评判标准", "作为评委", "作为裁判", "公正的裁判", "奖励模型", "哪个回答更好",
               "哪个回复更好", "对回答进行评分", "给回答打分", "评估回答的质量"],
        "ja": ["採点基準", "評価基準", "審査員として", "公平な審査員", "報酬モデル", "どちらの回答が良い", "回答を評価", "回答を採点"],
        "ko": ["채점 기준", "평가 기준", "심사위원으로서", "공정한 심사위원", "보상 모델", "어느 답변이 더 나은", "답변을 평가", "답변을 채점"],
        "ru": ["критерии оценки", "в роли судьи", "беспристрастный судья", "беспристрастного судьи", "модель вознаграждения",
               "какой ответ лучше", "оцени{|те} ответ", "оцени{|те} качество ответа"],
        "es": ["rúbrica", "juez imparcial", "como juez", "modelo de recompensa", "qué respuesta es mejor",
               "cuál respuesta es mejor", "evalúa la respuesta", "califica la respuesta"],
        "fr": ["grille d évaluation", "juge impartial", "en tant que juge", "modèle de récompense",
               "quelle réponse est meilleure", "quelle réponse est la meilleure", "évalue la réponse", "évaluez la réponse",
               "notez la réponse"],
        "de": ["bewertungsrubrik", "bewertungskriterien", "unparteiischer richter", "als richter", "belohnungsmodell",
               "welche antwort ist besser", "bewerte die antwort", "bewerten sie die antwort"],
        "pt": ["rubrica", "juiz imparcial", "como juiz", "modelo de recompensa", "qual resposta é melhor",
               "avalie a resposta"],
        "it": ["rubrica di valutazione", "giudice imparziale", "come giudice", "modello di ricompensa",
               "quale risposta è migliore", "valuta la risposta"],
        "ar": ["معايير التقييم", "حكم محايد", "كحكم", "نموذج المكافأة", "أي إجابة أفضل", "قيّم الإجابة", "قيم الإجابة"],
        "hi": ["मूल्यांकन मानदंड", "निष्पक्ष न्यायाधीश", "कौन सा उत्तर बेहतर", "उत्तर का मूल्यांकन"],
        "vi": ["tiêu chí chấm điểm", "tiêu chí đánh giá", "giám khảo công bằng", "câu trả lời nào tốt hơn",
               "đánh giá câu trả lời", "chấm điểm câu trả lời"],
        "tr": ["değerlendirme kriterleri", "tarafsız bir hakem", "hangi yanıt daha iyi", "hangi cevap daha iyi",
               "yanıtı değerlendir", "cevabı değerlendir"],
        "id": ["rubrik penilaian", "kriteria penilaian", "juri yang adil", "jawaban mana yang lebih baik",
               "nilai jawaban", "evaluasi jawaban"],
        "pl": ["kryteria oceny", "bezstronny sędzia", "która odpowiedź jest lepsza", "oceń odpowiedź"],
        "nl": ["beoordelingscriteria", "onpartijdige rechter", "welk antwoord is beter", "beoordeel het antwoord"],
    },
    "grade.verb": {
        "en": ["grade", "score", "rate", "evaluate", "assess", "judge", "rank", "compare", "critique", "mark",
               "give a score", "assign a score", "rating", "scoring", "grading", "evaluation"],
        "zh": ["评分", "打分", "评估", "评价", "评判", "比较", "判断", "打个分"],
        "ja": ["採点", "評価", "評点", "比較", "判定", "点数をつけ"],
        "ko": ["점수", "평가", "채점", "비교", "판단"],
        "ru": ["оцени", "оцените", "оценка", "оценку", "сравни", "сравните", "поставь", "поставьте"],
        "es": ["evalúa", "evalue", "evalúe", "califica", "puntúa", "puntua", "compara", "valora"],
        "fr": ["évalue", "évaluez", "note", "notez", "compare", "comparez", "juge", "jugez"],
        "de": ["bewerte", "bewerten", "benote", "benoten", "vergleiche", "vergleichen", "beurteile", "beurteilen"],
        "pt": ["avalie", "avalia", "pontue", "classifique", "compare", "julgue"],
        "it": ["valuta", "valutare", "valuti", "confronta", "giudica", "assegna un punteggio"],
        "ar": ["قيّم", "قيم", "قارن", "مقارنة", "تقييم", "قدّر"],
        "hi": ["आकलन", "मूल्यांकन", "तुलना", "अंक दें", "रेटिंग"],
        "vi": ["đánh giá", "chấm điểm", "so sánh", "cho điểm"],
        "tr": ["değerlendir", "değerlendirin", "puanla", "puanlayın", "karşılaştır", "karşılaştırın"],
        "id": ["nilai", "nilailah", "evaluasi", "bandingkan", "beri skor", "beri nilai"],
        "pl": ["oceń", "oceńcie", "porównaj", "wystaw ocenę"],
        "nl": ["beoordeel", "evalueer", "vergelijk", "geef een score", "scoor"],
    },
    "grade.object": {
        "en": ["response", "responses", "answer", "answers", "output", "outputs", "completion", "completions",
               "reply", "replies", "submission", "submissions", "candidate", "candidates", "assistant", "model",
               "essay", "generation", "generations"],
        "zh": ["回答", "回复", "答案", "输出", "模型", "助手", "作答"],
        "ja": ["応答", "回答", "出力", "モデル", "アシスタント", "解答"],
        "ko": ["답변", "응답", "출력", "모델", "어시스턴트"],
        "ru": ["ответ", "ответы", "ответа", "ответов", "вывод", "модели", "ассистента"],
        "es": ["respuesta", "respuestas", "salida", "modelo", "asistente"],
        "fr": ["réponse", "réponses", "sortie", "modèle", "assistant"],
        "de": ["antwort", "antworten", "ausgabe", "modell", "assistent", "assistenten"],
        "pt": ["resposta", "respostas", "saída", "modelo", "assistente"],
        "it": ["risposta", "risposte", "output", "modello", "assistente"],
        "ar": ["إجابة", "الإجابة", "الاجابة", "الرد", "الردود", "النموذج", "المساعد"],
        "hi": ["उत्तर", "जवाब", "प्रतिक्रिया", "मॉडल"],
        "vi": ["câu trả lời", "phản hồi", "mô hình", "trợ lý"],
        "tr": ["yanıt", "yanıtı", "yanıtları", "cevap", "cevabı", "cevapları", "model", "asistan"],
        "id": ["jawaban", "respons", "tanggapan", "model", "asisten"],
        "pl": ["odpowiedź", "odpowiedzi", "model", "asystenta"],
        "nl": ["antwoord", "antwoorden", "reactie", "model", "assistent"],
    },
    "grade.scale": {
        "en": ["rubric", "scale", "criteria", "criterion", "out of " + "{5|10|100}", "from {0|1} to {5|7|10|100}",
               "between {0|1} and {5|7|10|100}", "likert", "points", "score of", "rating of", "verdict",
               "helpfulness", "harmlessness", "correctness", "accuracy", "relevance", "coherence", "fluency",
               "factuality", "better", "preferred", "preference", "winner", "tie", "which is better",
               "rating", "score"],
        "zh": ["评分标准", "标准", "分制", "满分", "分数", "准确性", "相关性", "更好", "平局", "1到10", "1 10分"],
        "ja": ["基準", "点満点", "点数", "スコア", "正確性", "より良い", "引き分け"],
        "ko": ["기준", "점 만점", "점수", "척도", "정확성", "더 나은", "무승부"],
        "ru": ["шкала", "шкале", "критерии", "критериям", "баллов", "балла", "лучше", "точность"],
        "es": ["escala", "criterios", "puntos", "puntuación", "mejor", "precisión"],
        "fr": ["échelle", "critères", "barème", "points", "meilleure", "meilleur", "précision"],
        "de": ["skala", "kriterien", "punkte", "punkten", "besser", "genauigkeit"],
        "pt": ["escala", "critérios", "pontos", "nota", "melhor", "precisão"],
        "it": ["scala", "criteri", "punti", "punteggio", "migliore", "accuratezza"],
        "ar": ["مقياس", "معايير", "درجة", "درجات", "أفضل"],
        "hi": ["पैमाने", "मानदंड", "अंक", "बेहतर"],
        "vi": ["thang điểm", "tiêu chí", "điểm", "tốt hơn"],
        "tr": ["ölçek", "ölçeğinde", "kriter", "kriterler", "puan", "daha iyi"],
        "id": ["skala", "kriteria", "poin", "skor", "lebih baik"],
        "pl": ["skala", "skali", "kryteria", "punktów", "lepsza"],
        "nl": ["schaal", "criteria", "punten", "beter"],
    },
    "grade.pair_a": {
        "en": ["{response|answer|output|assistant|completion|model|candidate} {a|1}", "{a|1} is better"],
        "zh": ["回答a", "回答 a", "回复a", "助手a", "回答1", "回答一"],
        "ja": ["回答a", "応答a", "回答1"],
        "ko": ["답변 a", "응답 a", "답변 1"],
        "ru": ["ответ а", "ответ a", "ответ 1"],
        "es": ["respuesta a", "respuesta 1"],
        "fr": ["réponse a", "réponse 1"],
        "de": ["antwort a", "antwort 1"],
        "pt": ["resposta a", "resposta 1"],
        "it": ["risposta a", "risposta 1"],
    },
    "grade.pair_b": {
        "en": ["{response|answer|output|assistant|completion|model|candidate} {b|2}", "{b|2} is better"],
        "zh": ["回答b", "回答 b", "回复b", "助手b", "回答2", "回答二"],
        "ja": ["回答b", "応答b", "回答2"],
        "ko": ["답변 b", "응답 b", "답변 2"],
        "ru": ["ответ б", "ответ b", "ответ 2"],
        "es": ["respuesta b", "respuesta 2"],
        "fr": ["réponse b", "réponse 2"],
        "de": ["antwort b", "antwort 2"],
        "pt": ["resposta b", "resposta 2"],
        "it": ["risposta b", "risposta 2"],
    },
    # ---------------------------------------------------------------------------------------------
    # Capability ("cap.*"): what the prompt asks for.  Counted, weighted (CAPABILITY_WEIGHTS) and
    # combined with symbol counts (code punctuation, math symbols, numbers); the best score wins.
    # ---------------------------------------------------------------------------------------------
    "cap.code": {
        "en": ["code", "function", "python", "javascript", "typescript", "java", "c++", "c#", "golang", "rust",
               "sql", "html", "css", "regex", "bash", "shell script", "program", "programming", "compile", "compiler",
               "bug", "debug", "exception", "stack trace", "api", "class", "method", "variable", "loop", "array",
               "def", "return", "import", "const", "console", "lambda", "repository", "git", "docker",
               "kubernetes", "react", "npm", "pip", "algorithm", "implement", "refactor", "unit test", "script",
               "endpoint", "database", "query", "json", "yaml", "print", "int", "string", "null", "dataframe"],
        "zh": ["代码", "程序", "函数", "编程", "算法", "报错", "调试"],
        "ja": ["コード", "プログラム", "関数", "アルゴリズム", "デバッグ"],
        "ko": ["코드", "프로그램", "함수", "알고리즘", "디버그"],
        "ru": ["код", "кода", "функцию", "функция", "программу", "программа", "алгоритм"],
        "es": ["código", "función", "programa", "algoritmo"],
        "fr": ["code", "fonction", "programme", "algorithme"],
        "de": ["funktion", "programm", "algorithmus"],
        "pt": ["código", "função", "programa", "algoritmo"],
        "it": ["codice", "funzione", "programma", "algoritmo"],
        "id": ["kode", "fungsi", "program"],
        "tr": ["kod", "fonksiyon", "program"],
        "pl": ["kod", "funkcja", "funkcję", "program"],
        "nl": ["functie", "programma"],
        "vi": ["mã nguồn", "hàm", "chương trình"],
    },
    "cap.math": {
        "en": ["calculate", "compute", "solve", "equation", "equations", "integral", "derivative", "probability",
               "sum", "product", "prime", "how many", "how much", "percent", "percentage", "average", "triangle",
               "area", "volume", "radius", "angle", "polynomial", "matrix", "theorem", "prove", "proof",
               "value of", "find x", "real numbers", "integers", "integer", "divisible", "remainder", "fraction",
               "dollars", "total", "cost", "ratio", "frac", "sqrt", "circle", "square", "math", "mathematics",
               "algebra", "geometry", "calculus", "expression", "simplify", "evaluate", "minimum", "maximum"],
        "zh": ["计算", "方程", "数学", "求", "证明", "概率", "面积", "多少", "几个", "函数的值", "整数"],
        "ja": ["計算", "方程式", "数学", "確率", "面積", "いくつ", "何個", "証明", "整数"],
        "ko": ["계산", "방정식", "수학", "확률", "면적", "몇 개", "얼마", "증명", "정수"],
        "ru": ["вычисли", "вычислите", "уравнение", "математика", "вероятность", "сколько", "докажите", "найдите"],
        "es": ["calcula", "ecuación", "probabilidad", "cuántos", "cuántas", "cuánto"],
        "fr": ["calcule", "calculez", "équation", "probabilité", "combien"],
        "de": ["berechne", "gleichung", "wahrscheinlichkeit", "wie viele", "wieviel"],
        "pt": ["calcule", "equação", "probabilidade", "quantos", "quantas"],
        "it": ["calcola", "equazione", "probabilità", "quanti", "quante"],
        "id": ["hitung", "persamaan", "berapa"],
        "pl": ["oblicz", "równanie", "ile"],
        "nl": ["bereken", "vergelijking", "hoeveel"],
        "tr": ["hesapla", "denklem", "kaç"],
        "vi": ["tính", "phương trình", "bao nhiêu"],
        "ar": ["احسب", "معادلة", "كم"],
        "hi": ["गणना", "समीकरण", "कितने"],
    },
    "cap.reasoning": {
        "en": ["puzzle", "riddle", "logic", "logical", "deduce", "infer", "inference", "syllogism", "true or false",
               "which of the following", "brain teaser", "paradox", "implies", "contradiction", "reasoning",
               "think step by step", "lateral thinking", "trick question"],
        "zh": ["谜题", "逻辑", "推理", "脑筋急转弯", "悖论"],
        "ja": ["論理", "パズル", "なぞなぞ", "推論"],
        "ko": ["논리", "퍼즐", "수수께끼", "추론"],
        "ru": ["логика", "загадка", "головоломка", "рассуждение"],
        "es": ["acertijo", "lógica", "adivinanza", "razonamiento"],
        "fr": ["énigme", "logique", "devinette", "raisonnement"],
        "de": ["rätsel", "logik", "denksportaufgabe"],
        "pt": ["enigma", "lógica", "charada", "raciocínio"],
        "it": ["indovinello", "logica", "enigma", "ragionamento"],
    },
    "cap.writing": {
        "en": ["write", "rewrite", "compose", "draft", "story", "poem", "essay", "email", "letter", "blog",
               "article", "speech", "lyrics", "song", "slogan", "tweet", "caption", "paraphrase", "proofread",
               "tone", "haiku", "sonnet", "cover letter", "linkedin post", "novel", "chapter", "character",
               "screenplay", "limerick", "outline", "rephrase", "creative"],
        "zh": ["写一", "写首", "写篇", "写个", "故事", "诗", "文章", "邮件", "作文", "改写", "润色"],
        "ja": ["書いて", "物語", "詩", "文章", "メール", "作文", "書き直"],
        "ko": ["써 줘", "써줘", "작성해", "이야기", "시를", "글을", "이메일", "에세이"],
        "ru": ["напиши", "напишите", "рассказ", "стихотворение", "письмо", "эссе", "статью", "перепиши"],
        "es": ["escribe", "escriba", "historia", "poema", "ensayo", "correo", "carta", "reescribe"],
        "fr": ["écris", "écrivez", "rédige", "rédigez", "histoire", "poème", "lettre", "réécris"],
        "de": ["schreibe", "schreib", "geschichte", "gedicht", "aufsatz", "brief"],
        "pt": ["escreva", "escreve", "história", "poema", "redação", "carta"],
        "it": ["scrivi", "scriva", "storia", "poesia", "saggio", "lettera"],
        "id": ["tulis", "tuliskan", "cerita", "puisi", "esai", "surat"],
        "pl": ["napisz", "opowiadanie", "wiersz", "esej", "list"],
        "nl": ["schrijf", "verhaal", "gedicht", "essay", "brief"],
        "tr": ["yaz", "yazın", "hikaye", "şiir", "deneme", "mektup"],
        "vi": ["viết", "câu chuyện", "bài thơ", "bài luận", "thư"],
        "ar": ["اكتب", "قصة", "قصيدة", "مقال", "رسالة"],
        "hi": ["लिखो", "लिखिए", "लिखें", "कहानी", "कविता", "निबंध", "पत्र"],
    },
    "cap.translation": {
        "en": ["translate", "translation", "translating", "translator",
               "into {english|french|spanish|german|chinese|japanese|korean|russian|italian|portuguese|arabic|hindi|dutch|polish|turkish|vietnamese|indonesian}",
               "in {english|french|spanish|german|chinese|japanese|korean|russian|italian|portuguese} please"],
        "zh": ["翻译", "译成", "翻成", "译为"],
        "ja": ["翻訳", "訳して", "訳し"],
        "ko": ["번역"],
        "ru": ["переведи", "переведите", "перевод", "перевести"],
        "es": ["traduce", "traduzca", "traducir", "traducción"],
        "fr": ["traduis", "traduisez", "traduire", "traduction"],
        "de": ["übersetze", "übersetzen", "übersetzung", "übersetz"],
        "pt": ["traduza", "traduz", "traduzir", "tradução"],
        "it": ["traduci", "tradurre", "traduzione", "traduca"],
        "id": ["terjemahkan", "terjemahan"],
        "pl": ["przetłumacz", "tłumaczenie", "przetłumaczyć"],
        "nl": ["vertaal", "vertaling", "vertalen"],
        "tr": ["çevir", "çevirin", "tercüme"],
        "vi": ["dịch"],
        "ar": ["ترجم", "ترجمة"],
        "hi": ["अनुवाद"],
    },
    "cap.extraction": {
        "en": ["extract", "summarize", "summarise", "summary", "tl dr", "tldr", "classify", "categorize",
               "categorise", "parse", "entities", "named entity", "keywords", "key points", "sentiment", "list all",
               "identify all", "pull out", "following text", "following passage", "following article",
               "following document", "following paragraph", "label", "tag", "key information", "structured"],
        "zh": ["提取", "摘要", "总结", "概括", "分类", "关键词", "情感"],
        "ja": ["抽出", "要約", "分類", "キーワード", "まとめ"],
        "ko": ["추출", "요약", "분류", "키워드"],
        "ru": ["извлеки", "извлеките", "кратко", "резюме", "классифицируй", "перескажи", "суммируй"],
        "es": ["extrae", "resume", "resumen", "clasifica"],
        "fr": ["extrais", "extrayez", "résume", "résumez", "résumé", "classe", "classifie"],
        "de": ["extrahiere", "zusammen", "zusammenfassung", "klassifiziere", "fasse"],
        "pt": ["extraia", "resuma", "resumo", "classifique"],
        "it": ["estrai", "riassumi", "riassunto", "classifica"],
        "id": ["ekstrak", "ringkas", "ringkasan", "rangkum"],
        "pl": ["wyodrębnij", "streść", "podsumuj", "streszczenie"],
        "nl": ["extraheer", "samenvatting", "vat", "classificeer"],
        "tr": ["çıkar", "özetle", "özet", "sınıflandır"],
        "vi": ["trích xuất", "tóm tắt", "phân loại"],
        "ar": ["استخرج", "لخص", "ملخص", "صنف"],
        "hi": ["निकालें", "सारांश", "वर्गीकृत"],
    },
    "cap.chat": {
        "en": ["hi", "hello", "hey", "thanks", "thank you", "how are you", "what do you think", "your opinion",
               "recommend", "advice", "suggest", "tell me about", "who are you", "what is", "what are", "can you",
               "do you", "should i", "help me", "i feel"],
        "zh": ["你好", "谢谢", "推荐", "建议", "你觉得", "什么是", "我想"],
        "ja": ["こんにちは", "ありがとう", "おすすめ", "アドバイス", "どう思"],
        "ko": ["안녕", "감사", "추천", "조언", "어떻게 생각"],
        "ru": ["привет", "спасибо", "посоветуй", "что такое", "как дела"],
        "es": ["hola", "gracias", "recomienda", "consejo", "qué es"],
        "fr": ["bonjour", "salut", "merci", "conseil", "qu est ce que"],
        "de": ["hallo", "danke", "empfehlen", "rat", "was ist"],
        "pt": ["olá", "obrigado", "obrigada", "recomenda", "o que é"],
        "it": ["ciao", "grazie", "consiglio", "cos è"],
        "id": ["halo", "terima kasih", "apa itu"],
        "pl": ["cześć", "dziękuję", "co to jest"],
        "nl": ["hallo", "bedankt", "wat is"],
        "tr": ["merhaba", "teşekkür", "nedir"],
        "vi": ["xin chào", "cảm ơn", "là gì"],
        "ar": ["مرحبا", "شكرا", "ما هو"],
        "hi": ["नमस्ते", "धन्यवाद", "क्या है"],
    },
    # ---------------------------------------------------------------------------------------------
    # Reasoning traces in completions ("trace.*").
    # ---------------------------------------------------------------------------------------------
    "trace.step": {
        "en": ["step " + _N, "step one", "step two", "step three"],
        "zh": ["第一步", "第二步", "第三步", "步骤" + _N, "步骤一", "步骤二"],
        "ja": ["ステップ" + _N, "手順" + _N],
        "ko": ["단계 " + _N, _N + "단계"],
        "ru": ["шаг " + _N],
        "es": ["paso " + _N],
        "fr": ["étape " + _N],
        "de": ["schritt " + _N],
        "pt": ["passo " + _N, "etapa " + _N],
        "it": ["passo " + _N, "passaggio " + _N],
        "id": ["langkah " + _N],
        "pl": ["krok " + _N],
        "nl": ["stap " + _N],
        "tr": ["adım " + _N],
        "vi": ["bước " + _N],
        "ar": ["الخطوة " + _N, "الخطوة الأولى", "الخطوة الثانية"],
        "hi": ["चरण " + _N],
    },
    "trace.connective": {
        "en": ["therefore", "thus", "hence", "so the answer", "which means", "it follows", "consequently",
               "we get", "we have", "this gives", "so we", "the answer is", "which gives", "substituting"],
        "zh": ["因此", "所以", "于是", "从而", "故答案", "答案是", "可得", "得到"],
        "ja": ["したがって", "よって", "ゆえに", "従って", "答えは"],
        "ko": ["따라서", "그러므로", "그래서", "답은"],
        "ru": ["поэтому", "следовательно", "значит", "итак", "ответ"],
        "es": ["por lo tanto", "por tanto", "entonces", "así que", "la respuesta es"],
        "fr": ["donc", "ainsi", "par conséquent", "la réponse est"],
        "de": ["daher", "deshalb", "somit", "folglich", "die antwort ist"],
        "pt": ["portanto", "então", "logo", "a resposta é"],
        "it": ["quindi", "pertanto", "dunque", "la risposta è"],
        "id": ["oleh karena itu", "jadi", "maka", "jawabannya"],
        "pl": ["dlatego", "zatem", "więc", "odpowiedź to"],
        "nl": ["dus", "daarom", "het antwoord is"],
        "tr": ["dolayısıyla", "bu nedenle", "bu yüzden", "cevap"],
        "vi": ["vì vậy", "do đó", "vậy", "đáp án là"],
        "ar": ["لذلك", "إذن", "وبالتالي", "الإجابة هي"],
        "hi": ["इसलिए", "अतः", "उत्तर है"],
    },
    "trace.ordinal": {
        "en": ["first", "firstly", "second", "secondly", "next", "then", "finally", "lastly"],
        "zh": ["首先", "其次", "然后", "接着", "最后"],
        "ja": ["まず", "次に", "最後に"],
        "ko": ["먼저", "다음으로", "마지막으로"],
        "ru": ["сначала", "затем", "далее", "наконец", "во первых", "во вторых"],
        "es": ["primero", "luego", "después", "finalmente"],
        "fr": ["d abord", "ensuite", "enfin", "puis"],
        "de": ["zuerst", "dann", "schließlich", "danach"],
        "pt": ["primeiro", "depois", "finalmente"],
        "it": ["prima", "poi", "infine"],
        "id": ["pertama", "kemudian", "akhirnya"],
        "pl": ["najpierw", "następnie", "wreszcie"],
        "nl": ["eerst", "vervolgens", "ten slotte"],
        "tr": ["önce", "sonra", "son olarak"],
        "vi": ["đầu tiên", "tiếp theo", "cuối cùng"],
        "ar": ["أولا", "ثم", "أخيرا"],
        "hi": ["पहले", "फिर", "अंत में"],
    },
    "trace.strong": {
        "en": ["let s think", "let me think", "let s break this down", "let s break it down", "let me work through",
               "let s solve", "let s work through", "let s start by", "let me start by", "thinking process",
               "reasoning", "let s denote", "let s calculate", "let s compute", "let me check", "let s verify"],
        "zh": ["让我们一步一步", "我们一步一步", "让我想想", "让我们来", "思考过程", "推理过程", "解题过程"],
        "ja": ["考えてみましょう", "順を追って", "まず考え"],
        "ko": ["단계별로", "생각해 봅시다", "차근차근"],
        "ru": ["давайте разберём", "давайте разберем", "рассмотрим", "давайте посчитаем"],
        "es": ["vamos a pensar", "pensemos", "analicemos"],
        "fr": ["réfléchissons", "analysons", "commençons par"],
        "de": ["lass uns", "überlegen wir", "betrachten wir"],
        "pt": ["vamos pensar", "pensemos", "analisemos"],
        "it": ["ragioniamo", "pensiamo", "analizziamo"],
    },
}

# A capability cue counts this much; structural scores (symbols, numbers) are added in text.py.
CAPABILITY_WEIGHTS: dict[str, float] = {
    "code": 1.0,
    "math": 1.0,
    "reasoning": 1.0,
    "writing": 0.8,
    "translation": 3.0,  # a translation request is usually explicit and short
    "extraction": 1.2,
    "chat": 0.5,
}

RULES: dict[str, list[list]] = {
    "reasoning_elicit": [
        # a translation request's payload is not an instruction, unless the clause below also holds
        ["reason.strong", ("!near", "reason.negate", "reason.strong", 4), "!cap.translation"],
        # "explain your reasoning", "write out the reasoning behind this answer", "verbalize how you think"
        [("near", "reason.expose", "reason.thought", 6), ("near", "reason.thought", "reason.self", 4),
         ("!near", "reason.negate", "reason.expose", 3)],
        # "solve this step by step", "derive it step by step", "一步一步地计算"
        [("near", "reason.stepwise", "reason.solve", 10), "!reason.procedural", "!cap.translation",
         ("!near", "reason.negate", "reason.stepwise", 4)],
        # "write out the thinking, step by step"
        [("near", "reason.stepwise", "reason.thought", 10), ("near", "reason.expose", "reason.thought", 6),
         "!reason.procedural", "!cap.translation"],
    ],
    "rubric_grading": [
        ["grade.strong"],
        ["grade.pair_a", "grade.pair_b", "grade.verb"],
        [("near", "grade.verb", "grade.object", 8), "grade.scale"],
    ],
}

# --------------------------------------------------------------------------------------------------
# Inline test cases: flag -> language -> positives / negatives.  Tricky negatives (recipes, how-to
# guides, "explain like I'm five", translation requests, code comments, opinions) and tricky
# positives (paraphrases, non-English, mixed-language wrappers around an English question).
# --------------------------------------------------------------------------------------------------

EXAMPLES: dict[str, dict[str, dict[str, list[str]]]] = {
    "reasoning_elicit": {
        "en": {
            "pos": [
                "Solve the following problem. Think step by step.",
                "Let's think step by step.",
                "Imagine and articulate the internal reasoning behind a completed response and write it out step by step.",
                "Here is a question and its final answer. Reconstruct the reasoning behind this answer.",
                "Explain your reasoning before giving the final answer.",
                "Show your work.",
                "Please provide your full chain-of-thought, then the answer.",
                "Before you answer, think out loud and walk me through your thought process.",
                "Verbalize how you arrived at the answer.",
                "Write out the thinking that could have produced this answer, step by step.",
                "Reason before answering: what is 17 * 23?",
                "Put your reasoning inside <think> tags and then answer.",
                "Translate the answer into French and show your reasoning.",
                'Answer the following: "What is 2+2? Think step by step."',
                "Describe the steps you took to reach that conclusion.",
                "Calculate the area step by step.",
                "Give a step-by-step derivation of the formula.",
            ],
            "neg": [
                "Give me step-by-step instructions to bake bread.",
                "Explain like I'm five: why is the sky blue?",
                "Translate 'thinking process' into French.",
                "What are your thoughts on remote work?",
                "Explain the reasoning behind the French Revolution.",
                "Write a Python function that reverses a list.  # step 1: loop over items",
                "How do I install Docker on Ubuntu step by step?",
                "Explain how photosynthesis works.",
                "Just give me the answer, don't explain your reasoning.",
                "Summarize this article in three sentences.",
                "What is the capital of France?",
                "Step by step guide to setting up a home network.",
            ],
        },
        "zh": {
            "pos": ["请一步一步地思考，然后回答：12乘以13是多少？", "请展示你的推理过程。", "写出详细的解题过程。",
                    "逐步推理并给出答案。", "请解释你的思路。"],
            "neg": ["请给我一个蛋糕的做法，一步一步来。", "把这句话翻译成英文：我喜欢猫。", "你好，今天天气怎么样？",
                    "写一首关于春天的诗。"],
        },
        "ja": {
            "pos": ["ステップバイステップで考えてください。", "あなたの推論過程を示してください。", "段階的に考えてから答えて。",
                    "途中式も書いてください。"],
            "neg": ["カレーの作り方を順を追って教えて。", "この文を英語に翻訳してください。", "おすすめの本は？"],
        },
        "ko": {
            "pos": ["단계별로 생각해서 답하세요.", "추론 과정을 보여 주세요.", "풀이 과정을 자세히 설명해 주세요.",
                    "차근차근 생각해 보세요."],
            "neg": ["김치찌개 레시피를 단계별로 알려줘.", "이 문장을 영어로 번역해 줘.", "안녕하세요, 잘 지내세요?"],
        },
        "ru": {
            "pos": ["Подумай шаг за шагом и дай ответ.", "Объясни свои рассуждения.", "Покажи ход решения задачи.",
                    "Опиши свой ход мыслей, прежде чем ответить.", "Реши уравнение пошагово, рассуждая вслух."],
            "neg": ["Дай пошаговую инструкцию, как установить Windows.", "Переведи этот текст на английский.",
                    "Рецепт борща шаг за шагом."],
        },
        "es": {
            "pos": ["Piensa paso a paso y luego responde.", "Explica tu razonamiento.", "Muestra tu trabajo.",
                    "Resuelve el problema paso a paso."],
            "neg": ["Dame una receta de paella paso a paso.", "Traduce esta frase al inglés.", "¿Qué opinas del fútbol?"],
        },
        "fr": {
            "pos": ["Réfléchis étape par étape avant de répondre.", "Explique ton raisonnement.",
                    "Décris votre processus de réflexion.", "Résous ce problème étape par étape."],
            "neg": ["Donne-moi la recette des crêpes étape par étape.", "Traduis ce texte en anglais.",
                    "Explique-moi la photosynthèse."],
        },
        "de": {
            "pos": ["Denke Schritt für Schritt nach.", "Erkläre deinen Gedankengang.", "Zeige deinen Rechenweg.",
                    "Löse die Aufgabe Schritt für Schritt."],
            "neg": ["Gib mir eine Anleitung Schritt für Schritt, wie man Linux installiert.", "Übersetze das ins Englische.",
                    "Was ist die Hauptstadt von Frankreich?"],
        },
        "pt": {
            "pos": ["Pense passo a passo.", "Explique seu raciocínio.", "Resolva passo a passo."],
            "neg": ["Me dê uma receita de bolo passo a passo.", "Traduza para o inglês."],
        },
        "it": {
            "pos": ["Ragiona passo dopo passo.", "Spiega il tuo ragionamento.", "Risolvi passo dopo passo."],
            "neg": ["Dammi la ricetta della pizza passo dopo passo.", "Traduci in inglese."],
        },
        "ar": {
            "pos": ["فكر خطوة بخطوة ثم أجب.", "اشرح تفكيرك.", "حل خطوة بخطوة."],
            "neg": ["أعطني وصفة الكعكة خطوة بخطوة.", "ترجم هذه الجملة إلى الإنجليزية."],
        },
        "hi": {
            "pos": ["चरण दर चरण सोचें और उत्तर दें।", "अपना तर्क समझाइए।", "सोचने की प्रक्रिया दिखाइए।"],
            "neg": ["केक बनाने की रेसिपी चरण दर चरण बताइए।", "इस वाक्य का अंग्रेज़ी में अनुवाद करें।"],
        },
        "vi": {
            "pos": ["Hãy suy nghĩ từng bước.", "Giải thích lập luận của bạn.", "Trình bày quá trình suy luận."],
            "neg": ["Hướng dẫn nấu phở từng bước.", "Dịch câu này sang tiếng Anh."],
        },
        "tr": {
            "pos": ["Adım adım düşün ve cevapla.", "Düşünce sürecini açıkla.", "Akıl yürütmeni göster."],
            "neg": ["Kek tarifi adım adım.", "Bunu İngilizceye çevir."],
        },
        "id": {
            "pos": ["Berpikir langkah demi langkah.", "Jelaskan penalaranmu.", "Tunjukkan proses berpikir kamu."],
            "neg": ["Resep nasi goreng langkah demi langkah.", "Terjemahkan ke bahasa Inggris."],
        },
        "pl": {
            "pos": ["Pomyśl krok po kroku.", "Wyjaśnij swoje rozumowanie.", "Pokaż tok rozumowania."],
            "neg": ["Przepis na pierogi krok po kroku.", "Przetłumacz to na angielski."],
        },
        "nl": {
            "pos": ["Denk stap voor stap na.", "Leg je redenering uit.", "Beschrijf je gedachtegang."],
            "neg": ["Geef een recept voor pannenkoeken stap voor stap.", "Vertaal dit naar het Engels."],
        },
        "mixed": {
            "pos": ["请一步一步思考: What is the sum of the first 100 positive integers?",
                    "Ответь на вопрос и объясни свои рассуждения: Why do ships float?",
                    "Piensa paso a paso. If a train travels 60 miles in 1.5 hours, what is its speed?",
                    "以下の問題を解いてください。思考過程も書いてください。 A farmer has 17 sheep..."],
            "neg": ["Translate to English: 我喜欢一步一步地学习编程。", "把下面的英文翻译成中文：Let's think step by step."],
        },
    },
    "rubric_grading": {
        "en": {
            "pos": [
                "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant.",
                "Rate the response on a scale of 1 to 10 for helpfulness.",
                "Here are two responses. Response A: ... Response B: ... Which response is better? Output A or B.",
                "Score the following answer out of 10 according to the rubric below.",
                "Compare the two answers below and tell me which one is better.",
                "You are a strict grader. Grade the student's submission using these criteria: accuracy, clarity.",
            ],
            "neg": [
                "Rate this movie on a scale of 1 to 10.",
                "What's the score of the Lakers game?",
                "Compare Python and JavaScript.",
                "Write a response to this email.",
                "How are credit scores calculated?",
                "Grade 5 math: what is 7 times 8?",
            ],
        },
        "zh": {"pos": ["请作为公正的裁判，评估以下回答的质量，并按1到10分评分。", "哪个回答更好？回答A还是回答B？"],
               "neg": ["给这部电影打分。", "比较一下苹果和橘子。"]},
        "ja": {"pos": ["公平な審査員として、次の回答を10点満点で採点してください。"], "neg": ["この映画を評価して。"]},
        "ko": {"pos": ["공정한 심사위원으로서 다음 답변을 평가 기준에 따라 채점하세요."], "neg": ["이 영화 평점 알려줘."]},
        "ru": {"pos": ["Оцени ответ ассистента по шкале от 1 до 10.", "Какой ответ лучше: ответ A или ответ B?"],
               "neg": ["Сравни Python и Java."]},
        "es": {"pos": ["Evalúa la respuesta del asistente en una escala del 1 al 10."], "neg": ["Compara el café y el té."]},
        "fr": {"pos": ["Évaluez la réponse selon les critères suivants et donnez une note sur 10."],
               "neg": ["Compare Paris et Londres."]},
        "de": {"pos": ["Bewerte die Antwort des Assistenten auf einer Skala von 1 bis 10."],
               "neg": ["Vergleiche Hunde und Katzen."]},
    },
    "completion_has_reasoning": {
        "en": {
            "pos": [
                "Step 1: Janet has 16 eggs. Step 2: She uses 3 + 4 = 7. Therefore she sells 9 eggs.",
                "<think>The user wants the sum. 2 + 2 = 4.</think> The answer is 4.",
                "Let's think. First, 12 * 3 = 36. Then 36 + 4 = 40. Therefore, the answer is 40.",
                "We have x + 3 = 7, so x = 4. Substituting, y = 2x = 8, hence y = 8 and z = 1.",
            ],
            "neg": [
                "Paris is the capital of France.",
                "Here is a recipe: Step 1: preheat the oven. Step 2: mix flour and eggs.",
                "Sure! Here's a short poem about spring:\nFlowers bloom and birds sing.",
                "",
            ],
        },
        "zh": {"pos": ["首先，计算 3 + 4 = 7。然后 7 × 2 = 14。因此答案是 14。"], "neg": ["巴黎是法国的首都。"]},
        "ru": {"pos": ["Шаг 1: 2 + 3 = 5. Шаг 2: 5 * 2 = 10. Следовательно, ответ 10."], "neg": ["Москва — столица России."]},
        "es": {"pos": ["Paso 1: 2 + 3 = 5. Paso 2: 5 × 2 = 10. Por lo tanto, la respuesta es 10."],
               "neg": ["Madrid es la capital de España."]},
    },
}
